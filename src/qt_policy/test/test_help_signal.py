"""Ask for help (runtime/help_signal.py): raised after N low estimates in a row, lowered by one good one,
off at threshold 0, through a calibration map when given."""
import json

import pytest

from qt_policy.runtime.help_signal import HelpSignal, load_calibration


def test_raised_after_the_ticks_and_lowered_by_one_good_estimate():
    h = HelpSignal(threshold=0.5, ticks=3)
    assert [h.update(q) for q in (0.4, 0.3, 0.45)] == [None, None, True] and h.needed
    assert h.update(0.2) is None  # still needed: no new message
    assert h.update(0.6) is False and not h.needed
    assert [h.update(q) for q in (0.1, 0.7, 0.1, 0.1)] == [None, None, None, None]  # the run was broken
    assert h.update(float("nan")) is None  # an operator's step has no estimate of its own
    assert h.update(0.1) is True and h.reset() is False and h.reset() is None


def test_off_at_threshold_zero_and_bad_settings_refused():
    h = HelpSignal(threshold=0.0)
    assert not h.enabled and all(h.update(0.0) is None for _ in range(10))
    for bad in (dict(threshold=1.0), dict(threshold=-0.1), dict(threshold=0.5, ticks=0)):
        with pytest.raises(ValueError):
            HelpSignal(**bad)


def test_a_calibration_map_turns_q_into_a_success_probability(tmp_path):
    path = tmp_path / "calibration_map.json"
    path.write_text(json.dumps({"q": [0.0, 0.5, 1.0], "p": [0.8, 0.9, 0.95]}))
    calibrate = load_calibration(path)
    assert calibrate(0.25) == pytest.approx(0.85)
    h = HelpSignal(threshold=0.5, ticks=1, calibrate=calibrate)
    assert h.update(0.0) is None and h.estimate == pytest.approx(0.8)  # raw Q 0 is an 80% success here
    path.write_text(json.dumps({"q": [0.5, 0.1], "p": [0.1, 0.2]}))
    with pytest.raises(ValueError, match="increasing"):
        load_calibration(path)
