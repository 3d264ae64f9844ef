"""The faster-action probe of issue 37: Q of the demonstrated action against the same action at the expert's
speed, and the greedy action's speed, on a state-only model (no data needed)."""
import numpy as np
import pytest
import torch

from qt_policy.core.decoding import greedy_decode
from qt_policy.core.discretizer import make_discretizer
from qt_policy.research.faster_actions import SLOW_SCALE, compare
from qt_test_helpers.models import random_context, state_model


@pytest.fixture
def setting():
    model = state_model(action_dim=4, num_bins=11)
    images, text, state = random_context(model, batch=6)
    return model, {"images": images, "text": text, "state": state}, make_discretizer([-1.0] * 4, [1.0] * 4, 11)


def test_an_action_already_at_full_speed_is_its_own_faster_action(setting):
    model, obs, disc = setting
    demo = np.tile([1.0, -1.0, 1.0, 0.2], (6, 1))  # scaling by 1/0.4 clips back to the same action
    r = compare(model, obs, demo, disc)
    assert r["q_faster"] == pytest.approx(r["q_demonstrated"]) and r["faster_ranked_higher"] == 0.0


def test_the_q_values_and_the_speed_ratio_are_the_models(setting):
    model, obs, disc = setting
    demo = np.tile([0.2, 0.0, -0.2, 1.0], (6, 1))
    r = compare(model, obs, demo, disc, chunk=4)  # chunks give the same numbers as one pass
    fast = demo.copy()
    fast[:, :3] /= SLOW_SCALE
    with torch.no_grad():
        context = model.encode_context(obs["images"], obs["text"], obs["state"])
        q = lambda a: model.q_values(context, torch.from_numpy(disc.to_bins(a)))[:, -1]  # noqa: E731
        bins_demo, bins_fast = torch.from_numpy(disc.to_bins(demo)), torch.from_numpy(disc.to_bins(fast))
        q_demo = q(demo).gather(-1, bins_demo[:, -1:])[:, 0].numpy()
        q_fast = q(fast).gather(-1, bins_fast[:, -1:])[:, 0].numpy()
        greedy = disc.to_values(greedy_decode(model, obs["images"], obs["text"], obs["state"]).bins).numpy()
    assert r["q_demonstrated"] == pytest.approx(q_demo.mean(), abs=1e-6)
    assert r["faster_ranked_higher"] == pytest.approx(np.mean(q_fast > q_demo))
    speed = np.linalg.norm(greedy[:, :3], axis=1) / np.linalg.norm(demo[:, :3], axis=1)
    assert r["greedy_speed_over_demonstrated_median"] == pytest.approx(np.median(speed), rel=1e-5)
