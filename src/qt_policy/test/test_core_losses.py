import copy

import pytest
import torch

from qt_policy.core.batch import Observation, TransitionBatch
from qt_policy.core.config import LossConfig, ModelConfig
from qt_policy.core.losses import bellman_targets, conservative_penalty, q_transformer_loss, value_loss
from qt_policy.core.model import QTransformer


def tq(values):
    """target_q (1, d, bins) from a nested list."""
    return torch.tensor([values], dtype=torch.float32)


def test_within_step_target_is_max_over_the_next_dimension():
    target_q = tq([[0.1, 0.2, 0.3], [0.4, 0.9, 0.5], [0.7, 0.2, 0.6]])
    t = bellman_targets(target_q, torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([0.0]), torch.tensor([0.0]), None)
    assert t[0, 0].item() == pytest.approx(0.9)  # max of dim 1's row
    assert t[0, 1].item() == pytest.approx(0.7)  # max of dim 2's row


def test_last_dimension_target_includes_the_reward():
    """Defect: reward missing from the last dimension's target."""
    target_q = tq([[0.0, 0.0], [0.0, 0.0]])
    t = bellman_targets(target_q, torch.zeros(1, 2), torch.tensor([1.0]), torch.tensor([0.0]), None)
    assert t[0, -1].item() == pytest.approx(1.0)


def test_last_dimension_bootstraps_from_the_first_dimension_of_the_next_step():
    target_q = tq([[0.0, 0.0], [0.0, 0.0]])
    t = bellman_targets(target_q, torch.tensor([[0.2, 0.8]]), torch.tensor([0.1]), torch.tensor([0.9]), None)
    assert t[0, -1].item() == pytest.approx(0.1 + 0.9 * 0.8)


def test_no_bootstrap_past_the_episode_end():
    """Defect: bootstrapping past the episode end. A zero discount ignores even a confident next Q."""
    target_q = tq([[0.0, 0.0], [0.0, 0.0]])
    t = bellman_targets(target_q, torch.tensor([[1.0, 1.0]]), torch.tensor([0.0]), torch.tensor([0.0]), None)
    assert t[0, -1].item() == 0.0


def test_monte_carlo_bound_never_lets_a_target_fall_below_the_return_to_go():
    g = torch.Generator().manual_seed(0)
    target_q = torch.rand(256, 4, 8, generator=g)
    next_q = torch.rand(256, 8, generator=g)
    reward = (torch.rand(256, generator=g) < 0.1).float()
    discount = torch.where(reward > 0, 0.0, 0.98)
    mc = torch.rand(256, generator=g)
    t = bellman_targets(target_q, next_q, reward, discount, mc)
    assert torch.all(t >= mc[:, None])
    no_mc = bellman_targets(target_q, next_q, reward, discount, None)
    assert torch.equal(t, torch.maximum(no_mc, mc[:, None]))
    assert (no_mc < mc[:, None]).any()  # the bound was actually active somewhere


def test_regularizer_acts_on_q_not_logits():
    """Defect: regularising logits. Q = sigmoid(0) = 0.5 must be penalised (0.25), the dataset bin not at all."""
    q = torch.full((1, 2, 5), 0.5)
    bins = torch.tensor([[1, 3]])
    assert torch.allclose(conservative_penalty(q, bins), torch.full((1, 2), 0.25))
    q2 = torch.zeros(1, 2, 5)
    q2[0, 0, 1] = 1.0
    q2[0, 1, 3] = 1.0
    assert torch.equal(conservative_penalty(q2, bins), torch.zeros(1, 2))


def _tiny_model(num_bins=16, extra_heads=("behaviour",)):
    torch.manual_seed(0)
    cfg = ModelConfig(action_dim=2, num_bins=num_bins, action_low=[-1.0, -1.0], action_high=[1.0, 1.0], action_names=["a", "b"],
                      image_size=0, state_dim=4, text_dim=4, d_model=32, num_layers=1, num_heads=2,
                      extra_heads=list(extra_heads))
    return QTransformer(cfg)


def _fixed_batch(reward: float):
    n = 32
    obs = Observation(torch.zeros(n, 4), state=torch.eye(4).repeat(n // 4, 1))
    bins = torch.tensor([[3, 7]]).repeat(n, 1)  # one dataset action everywhere
    r = torch.full((n,), reward)
    return TransitionBatch(obs, bins, r, torch.zeros(n), obs, r)


def _train(alpha: float, steps=300, conservatism="zero"):
    model = _tiny_model()
    target = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = _fixed_batch(1.0)
    cfg = LossConfig(conservative_weight=alpha, conservatism=conservatism)
    for _ in range(steps):
        loss, _ = q_transformer_loss(model, target, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        target.load_state_dict(model.state_dict())
    ctx = model.encode_context(None, batch.obs.text, batch.obs.state)
    q = model.q_values(ctx, batch.action_bins).detach()
    unseen = torch.ones_like(q, dtype=torch.bool).scatter_(-1, batch.action_bins[..., None], False)
    return q.gather(-1, batch.action_bins[..., None])[..., 0], q[unseen]


@pytest.mark.parametrize("conservatism", ["zero", "support"])
def test_regularizer_drives_unseen_bins_toward_zero(conservatism):
    """Bins the data never takes are pulled down by either form ("support": the behaviour head soon
    puts them far below the dataset bin)."""
    q_data, q_unseen = _train(alpha=1.0 / 15, conservatism=conservatism)  # alpha 1 averaged over 15 unseen bins
    assert q_data.min() > 0.9  # the dataset action still reaches its target (reward 1)
    assert q_unseen.max() < 0.05
    _, q_unseen_free = _train(alpha=0.0, conservatism=conservatism)
    assert q_unseen_free.mean() > 5 * q_unseen.mean()


def test_loss_gradient_lowers_unseen_bins():
    model = _tiny_model()
    target = copy.deepcopy(model).requires_grad_(False)
    batch = _fixed_batch(0.0)
    batch.mc_return.zero_()
    ctx = model.encode_context(None, batch.obs.text, batch.obs.state)
    logits = model.action_logits(ctx, batch.action_bins[:, :1]).detach().requires_grad_(True)
    # reproduce the loss on these logits with a zero target: the regulariser's gradient must be positive
    q = torch.sigmoid(logits)
    penalty = conservative_penalty(q, batch.action_bins).mean()
    penalty.backward()
    grad = logits.grad
    unseen = torch.ones_like(grad, dtype=torch.bool).scatter_(-1, batch.action_bins[..., None], False)
    assert torch.all(grad[unseen] > 0)
    assert torch.all(grad[~unseen] == 0)


def _logit_grad(loss_kind: str, logits, bins, targets, alpha):
    x = logits.clone().requires_grad_(True)
    td, conservative = value_loss(x, bins, targets, LossConfig(conservative_weight=alpha, value_loss=loss_kind))
    (td + conservative).backward()
    return x.grad


def test_bce_gradient_is_the_mse_gradient_without_the_vanishing_factor():
    """Same minimiser, per bin: d(bce)/d(logit) = d(mse)/d(logit) / (Q (1 - Q)) for data and unseen bins."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, 8, generator=g) * 3
    bins = torch.randint(0, 8, (6, 3), generator=g)
    targets = torch.rand(6, 3, generator=g)
    q = torch.sigmoid(logits)
    mse = _logit_grad("mse", logits, bins, targets, alpha=5.0)
    bce = _logit_grad("bce", logits, bins, targets, alpha=5.0)
    assert torch.allclose(bce, mse / (q * (1 - q)), rtol=1e-4, atol=1e-6)
    # where Q is near 0 the paper's loss hardly moves the logit; the cross-entropy does
    low = q < 0.05
    assert low.any() and (mse[low].abs() < 0.05 * bce[low].abs()).all()


def _fit_one_state(loss_kind: str, steps: int, num_bins: int = 4):
    """One state, half the samples took bin 1 and half bin 2, both with return 0.8, pull 1/3 per bin."""
    torch.manual_seed(0)
    cfg = ModelConfig(action_dim=1, num_bins=num_bins, action_low=[-1.0], action_high=[1.0], action_names=["a"],
                      image_size=0, state_dim=4, text_dim=4, d_model=32, num_layers=1, num_heads=2)
    model = QTransformer(cfg)
    target = copy.deepcopy(model).requires_grad_(False)
    n = 16
    obs = Observation(torch.zeros(n, 4), state=torch.ones(n, 4))
    bins = torch.tensor([[1]] * (n // 2) + [[2]] * (n // 2))
    r = torch.full((n,), 0.8)
    batch = TransitionBatch(obs, bins, r, torch.zeros(n), obs, r)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    lcfg = LossConfig(conservative_weight=1.0 / 3, value_loss=loss_kind, conservatism="zero")
    for _ in range(steps):
        loss, _ = q_transformer_loss(model, target, batch, lcfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.first_dim_q(model.encode_context(None, obs.text, obs.state))[0].detach()


@pytest.mark.parametrize("loss_kind", ["mse", "bce"])
def test_both_value_losses_reach_the_same_regularised_fixed_point(loss_kind):
    # per bin: p (Q - y) + w (1 - p) Q = 0  ->  Q = 0.5 * 0.8 / (0.5 + 0.5 / 3) = 0.6
    q = _fit_one_state(loss_kind, steps=100)
    assert torch.allclose(q[1:3], torch.tensor([0.6, 0.6]), atol=0.02)
    assert q[0] < 0.1 and q[3] < 0.1  # never taken: pushed toward the minimal return


def test_the_pull_per_bin_does_not_change_with_the_number_of_bins():
    """The strength is per bin: the dataset bins' fixed point is the same at 4 and at 32 bins (an average
    over the unseen bins, as before, would pull each bin 31/3 times less at 32)."""
    q4 = _fit_one_state("bce", steps=100, num_bins=4)
    q32 = _fit_one_state("bce", steps=100, num_bins=32)
    assert torch.allclose(q32[1:3], q4[1:3], atol=0.02)
    assert torch.allclose(q32[1:3], torch.tensor([0.6, 0.6]), atol=0.02)


def test_value_loss_must_be_known():
    with pytest.raises(ValueError, match="value_loss"):
        LossConfig(value_loss="huber")


@pytest.mark.parametrize("algo", ["qt", "bc"])
def test_learner_keeps_a_polyak_average_with_rate_tau(algo):
    from qt_policy.core.config import TrainConfig
    from qt_policy.core.learner import Learner
    learner = Learner(_tiny_model(), LossConfig(), TrainConfig(algo=algo, target_tau=0.25, lr=1e-2))
    expected = {k: v.clone() for k, v in learner.model.state_dict().items()}
    for reward in (1.0, 0.0, 1.0):
        learner.update(_fixed_batch(reward))
        expected = {k: 0.75 * expected[k] + 0.25 * v for k, v in learner.model.state_dict().items()}
    got, online = learner.target.state_dict(), learner.model.state_dict()
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in got)
    assert any(not torch.allclose(got[k], online[k]) for k in got)  # it lags the online weights
