"""The calibration check of the greedy Q (research/q_calibration.py) on numbers known by hand."""
import numpy as np
import pytest

from qt_policy.research.q_calibration import fit_calibration, reliability, step_table


def test_each_episode_counts_once_whatever_its_length():
    q, y, w = step_table([{"q": [0.2, 0.4], "success": True}, {"q": [0.9, 0.8, 0.7, 0.6], "success": False}])
    assert q.tolist() == [0.2, 0.4, 0.9, 0.8, 0.7, 0.6] and y.tolist() == [1, 1, 0, 0, 0, 0]
    assert w.tolist() == pytest.approx([0.5, 0.5, 0.25, 0.25, 0.25, 0.25])


def test_reliability_of_a_perfect_and_of_an_overconfident_predictor():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)
    w = np.ones_like(p)
    assert reliability(p, y, w)["ece"] < 0.02  # success happens as often as predicted
    over = reliability(np.full(p.size, 0.9), y, w)  # always 0.9, while half succeed
    assert over["ece"] == pytest.approx(0.9 - y.mean(), abs=1e-9) and len(over["bins"]) == 1
    assert over["brier"] == pytest.approx(np.mean((0.9 - y) ** 2))


def test_isotonic_calibration_repairs_a_distorted_but_monotone_q():
    rng = np.random.default_rng(1)
    true = rng.uniform(0, 1, 40000)
    y = (rng.uniform(0, 1, true.size) < true).astype(float)
    q = np.sqrt(true)  # monotone in the truth, but overconfident
    w = np.ones_like(q)
    calibrate = fit_calibration(q[::2], y[::2], w[::2])
    raw, fixed = reliability(q[1::2], y[1::2], w[1::2]), reliability(calibrate(q[1::2]), y[1::2], w[1::2])
    assert raw["ece"] > 0.1 and fixed["ece"] < 0.02 and fixed["brier"] < raw["brier"]
    assert np.all(np.diff(calibrate(np.linspace(0, 1, 50))) >= 0)  # the map keeps the order of Q


def test_auroc_is_one_for_a_perfect_separation_and_a_half_for_none():
    from qt_policy.research.q_calibration import auroc

    y = np.array([1, 1, 0, 0], float)
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0 and auroc(np.ones(2), np.ones(2)) is None
