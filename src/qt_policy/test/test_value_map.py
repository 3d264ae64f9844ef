"""The value map of issue 37: V (the greedy action's Q) and Q of the demonstrated action along the demonstrations,
against the data's return and the return at the expert's speed."""
import numpy as np
import pytest
import torch

from qt_policy.core.decoding import greedy_decode
from qt_policy.core.discretizer import make_discretizer
from qt_policy.research.value_map import summarize, values_along
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
