"""Developer aids: the qt-demo and qt-launch command lines (over qt_policy.graph), a camera flooder and a
one-shot topic publisher for tests and benchmarks. Nothing outside tools/ and dev/ imports them."""
