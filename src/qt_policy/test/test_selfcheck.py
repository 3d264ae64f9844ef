"""The README's self-check command passes: the core learns the toy MDP's optimal policy and decodes."""
from qt_policy import selfcheck


def test_selfcheck_passes(capsys):
    assert selfcheck.main([]) == 0
    out = capsys.readouterr().out
    assert "self-check passed" in out and "greedy = optimal in" in out
