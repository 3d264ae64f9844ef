"""The baselines on the Q-Transformer backbone (core/algorithms.py): each loss on hand-computed numbers,
the model variants they need, and a tiny run of each on the toy MDP that learns to reach the goal."""
import math

import numpy as np
import pytest
import torch

from qt_policy.core import toy_mdp
from qt_policy.core.algorithms import (cql_regularizer, expectile_loss, iql_targets, model_requirements,
                                       success_to_go)
from qt_policy.core.config import LossConfig, ModelConfig, TrainConfig
from qt_policy.core.decoding import greedy_decode
from qt_policy.core.fast_decoding import FusedGreedyDecoder
from qt_policy.core.losses import pulled_bins
from qt_policy.core.model import QTransformer


def test_cql_regularizer_is_logsumexp_minus_the_dataset_logit():
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]]])  # (1, 2 dims, 2 bins)
    bins = torch.tensor([[1, 0]])
    reg = cql_regularizer(logits, bins)
    assert reg[0, 0].item() == pytest.approx(math.log(4.0 / 3.0))  # log(1 + 3) - log 3
    assert reg[0, 1].item() == pytest.approx(math.log(2.0))  # log(2 + 2) - log 2
    # its gradient: softmax - one-hot, so the dataset bin goes up and every other bin down
    x = logits.clone().requires_grad_(True)
    cql_regularizer(x, bins).sum().backward()
    assert torch.allclose(x.grad[0, 0], torch.tensor([0.25, -0.25]))


def test_expectile_loss_weights_the_two_sides_and_its_minimiser_is_the_expectile():
    loss = expectile_loss(torch.tensor([2.0, -2.0]), 0.7)
    assert loss.tolist() == pytest.approx([0.7 * 4, 0.3 * 4])
    # over the samples {0, 1}: tau (1 - v) = (1 - tau) v  ->  v = tau
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    samples = torch.tensor([0.0, 1.0])
    for _ in range(300):
        opt.zero_grad()
        expectile_loss(samples - v, 0.7).mean().backward()
        opt.step()
    assert v.item() == pytest.approx(0.7, abs=1e-4)


def test_iql_targets_are_in_sample_values():
    value = torch.tensor([[0.1, 0.4, 0.6]])  # V(s), V(s, a1), V(s, a1, a2)
    t = iql_targets(value, next_first_value=torch.tensor([0.5]), reward_sum=torch.tensor([0.2]),
                    discount=torch.tensor([0.9]))
    assert t[0].tolist() == pytest.approx([0.4, 0.6, 0.2 + 0.9 * 0.5])
    t_end = iql_targets(value, torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([0.0]))
    assert t_end[0, -1].item() == pytest.approx(1.0)  # no bootstrap past the episode end


def test_support_spares_bins_the_behaviour_head_finds_likely():
    probs = torch.tensor([[[0.5, 0.3, 0.04, 0.16]]])  # ratios to the best: 1, 0.6, 0.08, 0.32
    bins = torch.tensor([[0]])
    assert pulled_bins(bins, 4, probs.log(), 0.1)[0, 0].tolist() == [0, 0, 1, 0]
    assert pulled_bins(bins, 4, probs.log(), 0.5)[0, 0].tolist() == [0, 0, 1, 1]
    assert pulled_bins(bins, 4, None, 0.1)[0, 0].tolist() == [0, 1, 1, 1]  # "zero": every other bin


def test_success_to_go_is_the_undiscounted_sparse_return():
    assert success_to_go(torch.tensor([0.0, 0.98**40, 1.0])).tolist() == [0.0, 1.0, 1.0]


def _model(**kw):
    torch.manual_seed(0)
    cfg = ModelConfig(action_dim=3, num_bins=5, action_low=[-1.0] * 3, action_high=[1.0] * 3, action_names=["a", "b", "c"],
                      image_size=0, state_dim=4, text_dim=4, d_model=32, num_layers=2, num_heads=2, **kw)
    return QTransformer(cfg)


def test_rt1_bc_dimensions_do_not_see_the_earlier_bins():
    model = _model(**model_requirements("rt1_bc", LossConfig()))
    ctx = model.encode_context(None, torch.randn(2, 4), torch.randn(2, 4))
    a = model.action_logits(ctx, torch.tensor([[0, 1], [0, 1]]))
    b = model.action_logits(ctx, torch.tensor([[4, 3], [2, 0]]))
    assert torch.allclose(a, b)
    autoregressive = _model()
    assert not torch.allclose(autoregressive.action_logits(ctx, torch.tensor([[0, 1], [0, 1]])),
                              autoregressive.action_logits(ctx, torch.tensor([[4, 3], [2, 0]])))


@pytest.mark.parametrize("algo", ["rt1_bc", "dt", "iql", "qt"])
def test_fused_decoding_equals_the_reference_for_every_model_variant(algo):
    model = _model(**model_requirements(algo, LossConfig(conservatism="support"))).eval()
    g = torch.Generator().manual_seed(1)
    text, state = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    ref = greedy_decode(model, text=text, state=state)
    with torch.no_grad():
        fused = FusedGreedyDecoder(model)(model.encode_context(None, text, state))
    assert torch.equal(ref.bins, fused.bins)


def test_decision_transformer_acts_for_its_target_return():
    model = _model(**model_requirements("dt", LossConfig()))
    text, state = torch.randn(3, 4), torch.randn(3, 4)
    default = model.encode_context(None, text, state)
    assert torch.equal(default, model.encode_context(None, text, state, torch.ones(3)))
    assert not torch.equal(default, model.encode_context(None, text, state, torch.zeros(3)))


def test_a_checkpoint_carries_what_its_algorithm_added(tmp_path):
    from qt_policy.core.checkpoint import load_model, save_checkpoint
    for algo in ("iql", "rt1_bc", "dt"):
        model = _model(**model_requirements(algo, LossConfig()))
        save_checkpoint(tmp_path / algo, model, {})
        loaded = load_model(tmp_path / algo)
        assert loaded.cfg == model.cfg
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def greedy_reaches_goal(model) -> bool:
    """Roll the greedy policy through the toy MDP from position 0 at time 0."""
    pos = 0
    for t in range(toy_mdp.HORIZON):
        state = torch.tensor(toy_mdp.state_vector(pos, t))[None]
        bins = greedy_decode(model, text=torch.zeros(1, toy_mdp.TEXT_DIM), state=state).bins[0].tolist()
        pos, _, done = toy_mdp.step(pos, tuple(bins))
        if done:
            return pos == toy_mdp.GOAL
    return False


@pytest.mark.parametrize("algo,steps", [("cql", 600), ("iql", 600), ("bc", 400), ("rt1_bc", 400), ("dt", 400)])
def test_each_algorithm_learns_the_toy_task(algo, steps):
    """A tiny run on mixed data (20% near-expert episodes): the greedy policy reaches the goal; the
    untrained network does not."""
    loss_cfg = LossConfig(gamma=0.9, n_step=1, use_mc_lower_bound=algo == "cql")
    untrained, _, _ = toy_mdp.train(loss_cfg, steps=0, seed=0, algo=algo)
    assert not greedy_reaches_goal(untrained)
    model, _, _ = toy_mdp.train(loss_cfg, steps=steps, seed=0, algo=algo)
    assert greedy_reaches_goal(model)


def test_decision_transformer_told_failure_acts_otherwise():
    model, _, _ = toy_mdp.train(LossConfig(gamma=0.9, n_step=1), steps=400, seed=0, algo="dt")
    state = torch.tensor(np.array([toy_mdp.state_vector(p, 0) for p in range(toy_mdp.GOAL)]))
    text = torch.zeros(len(state), toy_mdp.TEXT_DIM)
    with torch.no_grad():
        success = model.action_logits(model.encode_context(None, text, state, torch.ones(len(state))), torch.zeros(len(state), 1, dtype=torch.long))
        failure = model.action_logits(model.encode_context(None, text, state, torch.zeros(len(state))), torch.zeros(len(state), 1, dtype=torch.long))
    assert (success.softmax(-1) - failure.softmax(-1)).abs().max() > 0.2  # the return token is used


def test_train_config_names_every_algorithm():
    for algo in ("qt", "cql", "iql", "bc", "rt1_bc", "dt"):
        TrainConfig(algo=algo)
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(algo="awac")


def test_the_learner_refuses_a_network_its_algorithm_cannot_train():
    from qt_policy.core.learner import Learner
    with pytest.raises(ValueError, match="behaviour"):
        Learner(_model(), LossConfig(conservatism="support"), TrainConfig(algo="qt"))
    with pytest.raises(ValueError, match="independent_dims"):
        Learner(_model(), LossConfig(), TrainConfig(algo="rt1_bc"))
    Learner(_model(extra_heads=["behaviour"]), LossConfig(conservatism="zero"), TrainConfig(algo="qt"))  # extra head: fine
