"""The value map of issue 37: V (the greedy action's Q) and Q of the demonstrated action along the demonstrations,
against the data's return and the return at the expert's speed."""
import numpy as np
import pytest
import torch

from qt_policy.core.decoding import greedy_decode
from qt_policy.core.discretizer import make_discretizer
from qt_policy.research.value_map import cross_values, double_q_summary, summarize, values_along
from qt_test_helpers.models import random_context, state_model


def test_values_are_the_greedy_actions_q_and_the_demonstrated_actions_q():
    model = state_model(action_dim=3, num_bins=9)
    images, text, state = random_context(model, batch=7)
    disc = make_discretizer([-1.0] * 3, [1.0] * 3, 9)
    demo = disc.to_bins(np.tile([0.3, -0.5, 1.0], (7, 1)))
    v, q = values_along(model, {"images": images, "text": text, "state": state}, demo, chunk=3)  # chunks: the same
    with torch.no_grad():
        greedy = greedy_decode(model, images, text, state)
        context = model.encode_context(images, text, state)
        bins = torch.from_numpy(demo)
        want_q = model.q_values(context, bins)[:, -1].gather(-1, bins[:, -1:])[:, 0].numpy()
        # V is the Q of the greedy action: the same number as scoring that action like any other
        greedy_q = model.q_values(context, greedy.bins)[:, -1].gather(-1, greedy.bins[:, -1:])[:, 0].numpy()
    np.testing.assert_allclose(v, greedy.q_value.numpy(), atol=1e-6)
    np.testing.assert_allclose(v, greedy_q, atol=1e-6)
    np.testing.assert_allclose(q, want_q, atol=1e-6)


def test_the_summary_reads_the_map():
    v = np.array([0.9, 0.5, 0.2, 0.8])
    q = np.array([0.8, 0.5, 0.1, 0.8])
    mc = np.array([0.5, 0.5, 0.5, 0.7])
    fast = np.array([0.9, 0.8, 0.8, 0.9])
    ahead = np.array([2, 3, -1, -1])  # two steps on, inside the episode for the first two rows
    r = summarize(v, q, mc, fast, ahead, 0.9)
    assert r["steps"] == 4 and r["value"] == pytest.approx(0.6)
    assert r["value_above_slow_return_share"] == pytest.approx(0.5)  # 0.9 and 0.8 lie over their returns + 0.05
    assert r["value_at_least_fast_return_share"] == pytest.approx(0.25)  # only 0.9 reaches its 0.9 - 0.05
    assert r["action_gap_mean"] == pytest.approx(0.05)
    assert r["value_minus_slow_return_mean"] == pytest.approx(np.mean(v - mc))
    assert r["q_demonstrated_where_bootstrapped"] == pytest.approx(0.65)  # rows 0 and 1
    assert r["discounted_value_n_ahead"] == pytest.approx(0.9 * (0.2 + 0.8) / 2)
    assert r["gap_fixed_point"] == pytest.approx(0.05 / 0.1)


def test_the_online_weights_choice_is_scored_by_the_acting_weights():
    """cross_values: the scorer's Q of the chooser's greedy action (chooser = scorer gives V), the target a
    double-Q update would bootstrap from; and the summary's gaps on hand-made numbers."""
    scorer, chooser = state_model(action_dim=3, num_bins=9, seed=0), state_model(action_dim=3, num_bins=9, seed=1)
    images, text, state = random_context(scorer, batch=6)
    obs = {"images": images, "text": text, "state": state}
    v, _ = values_along(scorer, obs, np.zeros((6, 3), dtype=np.int64))
    np.testing.assert_allclose(cross_values(scorer, scorer, obs, chunk=4), v, atol=1e-6)
    cross = cross_values(scorer, chooser, obs, chunk=4)
    with torch.no_grad():
        bins = greedy_decode(chooser, images, text, state).bins
        want = scorer.q_values(scorer.encode_context(images, text, state), bins)[:, -1].gather(-1, bins[:, -1:])[:, 0]
    np.testing.assert_allclose(cross, want.numpy(), atol=1e-6)
    r = double_q_summary(np.array([0.9, 0.8]), np.array([0.7, 0.8]), np.array([0.8, 0.8]), 0.9)
    assert r["selection_gap_mean"] == pytest.approx(0.05) and r["double_q_action_gap_mean"] == pytest.approx(0.05)
    assert r["double_q_gap_fixed_point"] == pytest.approx(0.5) and r["online_choice_is_greedy_share"] == 0.5
