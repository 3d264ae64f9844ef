"""Teacher-forced agreement: feeding the greedy action back in must agree with it exactly."""
import pytest
import torch

from qt_policy.core.batch import Observation, TransitionBatch
from qt_policy.core.config import ModelConfig
from qt_policy.core.decoding import greedy_decode
from qt_policy.core.diagnostics import teacher_forced_agreement
from qt_policy.core.model import QTransformer


def _model_and_obs(n=12):
    torch.manual_seed(0)
    cfg = ModelConfig(action_dim=3, num_bins=9, action_low=[-1.0] * 3, action_high=[1.0] * 3, action_names=["a", "b", "c"],
                      image_size=0, state_dim=4, text_dim=4, d_model=32, num_layers=1, num_heads=2)
    model = QTransformer(cfg).eval()
    obs = Observation(torch.randn(n, 4), state=torch.randn(n, 4))
    return model, obs


def _batch(obs, bins):
    zeros = torch.zeros(len(bins))
    return TransitionBatch(obs, bins, zeros, zeros, obs, zeros)


def test_greedy_actions_agree_with_themselves():
    model, obs = _model_and_obs()
    greedy = greedy_decode(model, None, obs.text, obs.state).bins
    r = teacher_forced_agreement(model, _batch(obs, greedy), torch.ones(len(greedy), dtype=torch.bool))
    assert r["median_bin_distance"] == [0.0, 0.0, 0.0] and r["within_one_bin"] == [1.0, 1.0, 1.0]
    assert r["q_dataset_bin"] == r["q_greedy_bin"]


def test_distance_and_mask_are_honoured():
    model, obs = _model_and_obs()
    greedy = greedy_decode(model, None, obs.text, obs.state).bins
    shifted = greedy.clone()
    shifted[:, 0] = (greedy[:, 0] + 4) % 9  # the first dimension's greedy bin does not depend on the prefix
    mask = torch.arange(len(greedy)) < 5
    r = teacher_forced_agreement(model, _batch(obs, shifted), mask)
    expected = (greedy[:5, 0] - shifted[:5, 0]).abs().float()
    assert r["samples"] == 5
    assert r["mean_bin_distance"][0] == expected.mean().item() and r["within_one_bin"][0] == 0.0
    assert r["q_dataset_bin"][0] < r["q_greedy_bin"][0]


def test_start_values_are_the_mean_greedy_and_taken_action_q_of_each_outcome():
    from qt_policy.core.diagnostics import start_values

    model, obs = _model_and_obs(n=10)
    successful = torch.tensor([True, False] * 5)
    bins = torch.randint(0, 9, (10, 3), generator=torch.Generator().manual_seed(0))
    context = model.encode_context(None, obs.text, obs.state)
    value = model.first_dim_q(context).max(-1).values
    taken = torch.stack([model.q_values(context[i:i + 1], bins[i:i + 1])[0, -1, bins[i, -1]] for i in range(10)])
    r = start_values(model, obs, bins, successful, chunk=3)  # chunks of 3 cover 10 starts unevenly
    assert r["successful"] == pytest.approx(value[successful].mean().item(), abs=1e-6)
    assert r["failed"] == pytest.approx(value[~successful].mean().item(), abs=1e-6)
    assert r["first_action_successful"] == pytest.approx(taken[successful].mean().item(), abs=1e-6)
    assert r["first_action_failed"] == pytest.approx(taken[~successful].mean().item(), abs=1e-6)
    assert r["successful"] != pytest.approx(r["failed"], abs=1e-6)  # the split is not one mean twice
