"""The training algorithms on one backbone: Q-Transformer, the paper's offline-RL baselines and imitation.

Every algorithm trains the same QTransformer network from the same TransitionBatch, and acts by the
same greedy decoding of its `head`: the Q logits for qt and cql, the policy logits for iql and the
imitation methods. What an algorithm needs beyond that (extra heads, a return token, independent
dimensions) is in `model_requirements`, so a checkpoint carries it and loads without the algorithm.

  qt      Q-Transformer (core/losses.py): per-dimension Bellman targets, conservative pull toward 0
  cql     the same targets with CQL's regularizer per dimension, logsumexp_b Q - Q(dataset bin)
          (Kumar et al. 2020), instead of the pull toward 0
  iql     Implicit Q-learning (Kostrikov et al. 2021) per dimension: V is an expectile of Q over the
          dataset bins, Q's targets use V (never a max over bins), the policy is advantage-weighted BC
  bc      behaviour cloning, dimension after dimension (each sees the bins before it)
  rt1_bc  behaviour cloning with every dimension predicted on its own (RT-1's discretized head)
  dt      Decision Transformer, minimal: BC told the episode's return-to-go (sparse 0/1 success reward:
          1 if the episode succeeds from this step on, else 0), acting told 1
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .batch import TransitionBatch
from .config import LossConfig
from .losses import behaviour_cloning_loss, per_dimension_targets, q_transformer_loss
from .model import QTransformer

#: IQL's cap on the advantage weights (as in the IQL paper's implementation)
AWR_WEIGHT_CAP = 100.0


def model_requirements(algo: str, loss_cfg: LossConfig) -> dict:
    """ModelConfig fields the algorithm needs (the rest is shaped by the data and the user)."""
    if algo == "qt":
        return {"extra_heads": ["behaviour"] if loss_cfg.conservatism == "support" else []}
    return {"iql": {"extra_heads": ["q", "value"]},
            "rt1_bc": {"independent_dims": True},
            "dt": {"return_token": True, "target_return": 1.0}}.get(algo, {})


def uses_target_network(algo: str) -> bool:
    return algo in ("qt", "cql", "iql")


def cql_regularizer(logits: torch.Tensor, action_bins: torch.Tensor) -> torch.Tensor:
    """logsumexp over the bins of the Q logits minus the dataset bin's, per sample and dimension, (B, d).

    On the sigmoid's logits (unbounded, as CQL's Q) it pushes every bin down in proportion to its
    softmax weight and the dataset bin up: a cross-entropy of the Q logits toward the data."""
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, action_bins[..., None])[..., 0]


def cql_loss(model: QTransformer, target_model: QTransformer, batch: TransitionBatch,
             cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    context = model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state)
    logits = model.action_logits(context, batch.action_bins[:, : model.cfg.action_dim - 1])
    targets = per_dimension_targets(target_model, batch, cfg.use_mc_lower_bound)
    data_logit = logits.gather(-1, batch.action_bins[..., None])[..., 0]
    td = F.binary_cross_entropy_with_logits(data_logit, targets)
    reg = cql_regularizer(logits, batch.action_bins).mean()
    loss = td + cfg.cql_weight * reg
    return loss, {"loss": loss.item(), "td_loss": td.item(), "cql_regularizer": reg.item(),
                  "q_data": torch.sigmoid(data_logit).mean().item(), "target": targets.mean().item()}


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """|tau - 1(diff < 0)| diff^2, elementwise: its minimiser over a constant is the tau-expectile."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff.pow(2)


def iql_targets(target_value: torch.Tensor, next_first_value: torch.Tensor, reward_sum: torch.Tensor,
                discount: torch.Tensor) -> torch.Tensor:
    """Q targets per dimension, (B, d), in-sample: dimension i < d takes V of the next prefix
    (target_value[:, i + 1], the expectile of Q over the data's bins there), the last dimension
    reward_sum + discount x V(s_{t+n}, first dimension). No max over bins anywhere."""
    last = reward_sum + discount * next_first_value
    return torch.cat([target_value[:, 1:], last[:, None]], dim=1)


def iql_loss(model: QTransformer, target_model: QTransformer, batch: TransitionBatch,
             cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    d = model.cfg.action_dim
    prefix = batch.action_bins[:, : d - 1]
    hidden = model.action_hidden(model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state), prefix)
    q_logit = model.extra_head("q", hidden).gather(-1, batch.action_bins[..., None])[..., 0]  # (B, d)
    value = torch.sigmoid(model.extra_head("value", hidden)[..., 0])  # V(s, a^{1:i-1}), (B, d)
    policy_logits = model.head(hidden)
    with torch.no_grad():
        t_hidden = target_model.action_hidden(
            target_model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state), prefix)
        t_q = torch.sigmoid(target_model.extra_head("q", t_hidden)).gather(-1, batch.action_bins[..., None])[..., 0]
        t_value = torch.sigmoid(target_model.extra_head("value", t_hidden)[..., 0])
        n = batch.next_obs
        empty = prefix[:, :0]
        next_hidden = target_model.action_hidden(target_model.encode_context(n.images, n.text, n.state), empty)
        next_value = torch.sigmoid(target_model.extra_head("value", next_hidden)[:, 0, 0])
        targets = iql_targets(t_value, next_value, batch.reward_sum, batch.discount)
        advantage = t_q - value.detach()
        weights = torch.exp(cfg.awr_temperature * advantage).clamp(max=AWR_WEIGHT_CAP)
    q_loss = F.binary_cross_entropy_with_logits(q_logit, targets)
    v_loss = expectile_loss(t_q - value, cfg.expectile).mean()
    ce = F.cross_entropy(policy_logits.flatten(0, 1), batch.action_bins.flatten(), reduction="none")
    policy_loss = (weights.flatten() * ce).mean()
    loss = q_loss + v_loss + policy_loss
    return loss, {"loss": loss.item(), "q_loss": q_loss.item(), "v_loss": v_loss.item(),
                  "policy_loss": policy_loss.item(), "q_data": t_q.mean().item(), "value": value.mean().item(),
                  "advantage": advantage.mean().item(), "awr_weight": weights.mean().item()}


def success_to_go(mc_return: torch.Tensor) -> torch.Tensor:
    """The undiscounted return-to-go of a sparse 0/1 success reward: 1 where the episode succeeds later."""
    return (mc_return > 0).float()


def decision_transformer_loss(model: QTransformer, batch: TransitionBatch) -> tuple[torch.Tensor, dict[str, float]]:
    context = model.encode_context(batch.obs.images, batch.obs.text, batch.obs.state, success_to_go(batch.mc_return))
    logits = model.action_logits(context, batch.action_bins[:, : model.cfg.action_dim - 1])
    loss = F.cross_entropy(logits.flatten(0, 1), batch.action_bins.flatten())
    acc = (logits.argmax(-1) == batch.action_bins).float().mean()
    return loss, {"loss": loss.item(), "bin_accuracy": acc.item()}


LossFn = Callable[[QTransformer, QTransformer, TransitionBatch, LossConfig], tuple[torch.Tensor, dict[str, float]]]

LOSSES: dict[str, LossFn] = {
    "qt": q_transformer_loss,
    "cql": cql_loss,
    "iql": iql_loss,
    "bc": lambda model, target, batch, cfg: behaviour_cloning_loss(model, batch),
    "rt1_bc": lambda model, target, batch, cfg: behaviour_cloning_loss(model, batch),
    "dt": lambda model, target, batch, cfg: decision_transformer_loss(model, batch),
}
