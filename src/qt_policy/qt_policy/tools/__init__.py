"""The product's command-line tools: record/import data (generate, import_bags, convert, salvage,
lerobot_export), train, evaluate, view. Each is a thin argparse layer over a library call
(qt_policy.training.fit, qt_policy.evaluation.evaluate, ...); installed as qt-<name>."""
