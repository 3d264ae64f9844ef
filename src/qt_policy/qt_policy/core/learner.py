"""One gradient step of Q-Transformer (online + Polyak target network) or of behaviour cloning.

The loss is computed in `Objective.forward` so the same step runs unchanged under
DistributedDataParallel (`Learner(..., wrap=DDP)`): DDP syncs gradients of what its forward used.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

from .batch import TransitionBatch
from .config import LossConfig, TrainConfig
from .losses import behaviour_cloning_loss, q_transformer_loss
from .model import QTransformer


class Objective(nn.Module):
    """Holds the trained model; the target network is kept outside the module tree (never trained)."""

    def __init__(self, model: QTransformer, target: QTransformer | None, loss_cfg: LossConfig, algo: str):
        super().__init__()
        self.model, self.loss_cfg, self.algo = model, loss_cfg, algo
        self._target = (target,)

    def forward(self, batch: TransitionBatch):
        if self.algo == "bc":
            return behaviour_cloning_loss(self.model, batch)
        return q_transformer_loss(self.model, self._target[0], batch, self.loss_cfg)


class Learner:
    def __init__(self, model: QTransformer, loss_cfg: LossConfig, train_cfg: TrainConfig,
                 wrap: Callable[[nn.Module], nn.Module] | None = None):
        if train_cfg.algo not in ("qt", "bc"):
            raise ValueError(f"algo must be 'qt' or 'bc', got {train_cfg.algo!r}")
        self.model, self.loss_cfg, self.train_cfg = model, loss_cfg, train_cfg
        self.target = None
        if train_cfg.algo == "qt":
            self.target = copy.deepcopy(model).eval()
            self.target.requires_grad_(False)
        objective = Objective(model, self.target, loss_cfg, train_cfg.algo)
        self.objective = wrap(objective) if wrap else objective
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.model.train()
        loss, info = self.objective(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.train_cfg.grad_clip:
            info["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip))
        self.optimizer.step()
        if self.target is not None:
            self.update_target()
        return info

    @torch.no_grad()
    def update_target(self):
        tau = self.train_cfg.target_tau
        for p_t, p in zip(self.target.parameters(), self.model.parameters()):
            p_t.lerp_(p, tau)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None}

    def load_state_dict(self, state: dict):
        self.optimizer.load_state_dict(state["optimizer"])
        if self.target is not None and state.get("target") is not None:
            self.target.load_state_dict(state["target"])
