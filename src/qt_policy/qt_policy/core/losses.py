"""Q-Transformer loss (Chebotar et al. 2023, Sec. 4): per-dimension Bellman targets, the
conservative regularizer toward the minimal return (0), the Monte-Carlo lower bound, n-step returns.
Also the behaviour-cloning loss used by the baselines, on the same backbone.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .batch import TransitionBatch
from .config import LossConfig
from .model import QTransformer


def bellman_targets(target_q: torch.Tensor, next_first_q: torch.Tensor, reward_sum: torch.Tensor,
                    discount: torch.Tensor, mc_return: torch.Tensor | None) -> torch.Tensor:
    """Per-dimension regression targets, (B, d).

    target_q: target-network Q at s_t with the dataset bins fed in, (B, d, bins).
    next_first_q: target-network Q of the first dimension at s_{t+n}, (B, bins).
    For i < d: max over the bins of dimension i+1 of the same step.
    For i = d: reward_sum + discount * max_b Q(s_{t+n}, a^1 = b); discount is 0 past the episode end.
    mc_return, when given, bounds every target from below (it lower-bounds the optimal Q of any
    prefix of the dataset action).
    """
    within_step = target_q[:, 1:].max(dim=-1).values
    last = reward_sum + discount * next_first_q.max(dim=-1).values
    targets = torch.cat([within_step, last[:, None]], dim=1)
    if mc_return is not None:
        targets = torch.maximum(targets, mc_return[:, None])
    return targets


def unseen_mean(values: torch.Tensor, action_bins: torch.Tensor) -> torch.Tensor:
    """Mean over the non-dataset bins of `values` (B, d, bins) -> (B, d)."""
    unseen = torch.ones_like(values).scatter_(-1, action_bins[..., None], 0.0)
    return (values * unseen).sum(-1) / (values.shape[-1] - 1)


def conservative_penalty(q: torch.Tensor, action_bins: torch.Tensor) -> torch.Tensor:
    """Mean over non-dataset bins of Q^2 (Q, not logits: a logit of 0 is Q = 0.5), (B, d)."""
    return unseen_mean(q.pow(2), action_bins)


def pulled_bins(action_bins: torch.Tensor, num_bins: int, behaviour_logits: torch.Tensor | None,
                threshold: float) -> torch.Tensor:
    """Which bins the conservative pull acts on, (B, d, bins) in {0, 1}: never the dataset's bin; with a
    behaviour head ("support"), only bins whose probability under it is below `threshold` x the most likely
    bin's: bins the data takes in such states keep their Bellman values, however rarely they are taken."""
    shape = (*action_bins.shape, num_bins)
    mask = torch.ones(shape, device=action_bins.device).scatter_(-1, action_bins[..., None], 0.0)
    if behaviour_logits is not None:
        with torch.no_grad():
            log_ratio = behaviour_logits - behaviour_logits.max(dim=-1, keepdim=True).values
            mask = mask * (log_ratio < math.log(threshold)).float()
    return mask


def value_loss(logits: torch.Tensor, action_bins: torch.Tensor, targets: torch.Tensor, cfg: LossConfig,
               pulled: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(TD term on the dataset bins, the pull of the other bins toward 0), both scalars.

    Each pulled bin (`pulled`, default: every non-dataset bin) is pulled with weight
    cfg.conservative_weight relative to the dataset sample's TD term, so in a table a cell's fixed point
    is n_cell y / (n_cell + w n_pulled) whatever the number of bins.
    value_loss "mse": 0.5 (Q - y)^2 and 0.5 w Q^2, as in the paper. "bce": the cross-entropy of
    Q = sigmoid(logit) against y and against 0. Per bin the two have the same minimiser: the
    gradient with respect to the logit differs only by the factor Q(1 - Q) that "mse" carries.
    So the method's fixed point is unchanged, and "bce" keeps learning where Q is near 0, where
    sparse, discounted returns put almost every value.
    """
    if pulled is None:
        pulled = pulled_bins(action_bins, logits.shape[-1], None, 1.0)
    data_logit = logits.gather(-1, action_bins[..., None])[..., 0]
    if cfg.value_loss == "bce":
        td = F.binary_cross_entropy_with_logits(data_logit, targets)
        return td, cfg.conservative_weight * (F.softplus(logits) * pulled).sum(-1).mean()
    td = 0.5 * (torch.sigmoid(data_logit) - targets).pow(2).mean()
    return td, 0.5 * cfg.conservative_weight * (torch.sigmoid(logits).pow(2) * pulled).sum(-1).mean()


def per_dimension_targets(target_model: QTransformer, batch: TransitionBatch, use_mc_bound: bool) -> torch.Tensor:
    """The Bellman targets of every dimension of the dataset action, from the target network, (B, d)."""
    with torch.no_grad():
        t_context = target_model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state)
        target_q = target_model.q_values(t_context, batch.action_bins)
        n = batch.next_obs
        next_first_q = target_model.first_dim_q(target_model.encode_context(n.images, n.text, n.state))
        mc = batch.mc_return if use_mc_bound else None
        return bellman_targets(target_q, next_first_q, batch.reward_sum, batch.discount, mc)


def q_transformer_loss(model: QTransformer, target_model: QTransformer, batch: TransitionBatch,
                       cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    context = model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state)
    hidden = model.action_hidden(context, batch.action_bins[:, : model.cfg.action_dim - 1])
    logits = model.head(hidden)  # (B, d, bins)
    targets = per_dimension_targets(target_model, batch, cfg.use_mc_lower_bound)
    behaviour_loss = torch.zeros(())
    behaviour_logits = None
    if cfg.conservatism == "support":  # the behaviour head says which bins the data takes in such states
        if "behaviour" not in model.cfg.extra_heads:
            raise ValueError("conservatism 'support' needs the model's behaviour head (ModelConfig.extra_heads = "
                             "['behaviour'], which core.algorithms.model_requirements sets)")
        behaviour_logits = model.extra_head("behaviour", hidden)
        behaviour_loss = F.cross_entropy(behaviour_logits.flatten(0, 1), batch.action_bins.flatten())
    pulled = pulled_bins(batch.action_bins, logits.shape[-1], behaviour_logits, cfg.support_threshold)
    td, conservative = value_loss(logits, batch.action_bins, targets, cfg, pulled)
    loss = td + conservative + behaviour_loss
    with torch.no_grad():
        q = torch.sigmoid(logits)
        q_data = q.gather(-1, batch.action_bins[..., None])[..., 0]
        penalty = conservative_penalty(q, batch.action_bins).mean()
    info = {"loss": loss.item(), "td_loss": td.item(), "conservative_penalty": penalty.item(),
            "q_data": q_data.mean().item(), "target": targets.mean().item(), "q_unseen_rms": penalty.sqrt().item(),
            "pulled_bins": pulled.sum(-1).mean().item()}
    if behaviour_logits is not None:
        info["behaviour_loss"] = behaviour_loss.item()
    return loss, info


def behaviour_cloning_loss(model: QTransformer, batch: TransitionBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the dataset bin at every dimension; decoding then takes the most likely bin."""
    context = model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state)
    logits = model.action_logits(context, batch.action_bins[:, : model.cfg.action_dim - 1])
    loss = F.cross_entropy(logits.flatten(0, 1), batch.action_bins.flatten())
    acc = (logits.argmax(-1) == batch.action_bins).float().mean()
    return loss, {"loss": loss.item(), "bin_accuracy": acc.item()}
