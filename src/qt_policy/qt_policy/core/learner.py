"""One gradient step of any algorithm of core/algorithms.py (online + Polyak target network).

Every algorithm keeps a Polyak-averaged copy of the weights (rate `target_tau`): the value-learning
ones (qt, cql, iql) bootstrap from it (their target network), and any can act with it (a run's
`checkpoint/`, by default),
which smooths the step-to-step jitter of the weights that a greedy argmax is sensitive to.

The loss is computed in `Objective.forward` so the same step runs unchanged under
DistributedDataParallel (`Learner(..., wrap=DDP)`): DDP syncs gradients of what its forward used.
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable

import torch
import torch.nn as nn

from .augment import augment_batch
from .batch import TransitionBatch
from .config import LossConfig, TrainConfig
from .algorithms import LOSSES, model_requirements, uses_target_network
from .model import QTransformer


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Learning-rate multiplier per step: 1, or a cosine from 1 at step 0 to 0 at `cfg.steps`."""
    if cfg.lr_schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / max(cfg.steps, 1)))
    return lambda step: 1.0


class Objective(nn.Module):
    """Holds the trained model; the target network is kept outside the module tree (never trained)."""

    def __init__(self, model: QTransformer, target: QTransformer | None, loss_cfg: LossConfig, algo: str):
        super().__init__()
        self.model, self.loss_cfg, self.algo = model, loss_cfg, algo
        self._target = (target,)

    def forward(self, batch: TransitionBatch):
        return LOSSES[self.algo](self.model, self._target[0], batch, self.loss_cfg)


class Learner:
    def __init__(self, model: QTransformer, loss_cfg: LossConfig, train_cfg: TrainConfig,
                 wrap: Callable[[nn.Module], nn.Module] | None = None):
        if train_cfg.algo not in LOSSES:
            raise ValueError(f"algo must be one of {list(LOSSES)}, got {train_cfg.algo!r}")
        def lacks(field, value):  # heads beyond those needed are harmless; the rest must match
            have = getattr(model.cfg, field)
            return not set(value) <= set(have) if field == "extra_heads" else have != value
        missing = {k: v for k, v in model_requirements(train_cfg.algo, loss_cfg).items() if lacks(k, v)}
        if missing:  # e.g. support conservatism on a network built without the behaviour head
            raise ValueError(f"algo {train_cfg.algo!r} with this loss needs a network with {missing} "
                             "(ModelConfig(**core.algorithms.model_requirements(algo, loss_cfg)))")
        if train_cfg.amp and next(model.parameters()).device.type != "cuda":
            raise ValueError("amp (bfloat16 mixed precision) runs on CUDA only: drop --amp on a CPU")
        self.model, self.loss_cfg, self.train_cfg = model, loss_cfg, train_cfg
        # Polyak average of the weights: the target network of Q-T, and for both the averaged policy.
        self.target = copy.deepcopy(model).eval()
        self.target.requires_grad_(False)
        objective = Objective(model, self.target if uses_target_network(train_cfg.algo) else None, loss_cfg, train_cfg.algo)
        self.objective = wrap(objective) if wrap else objective
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(train_cfg))
        # Draws the image shifts (train_cfg.augment_shift); a resumed run reseeds it (tools.train).
        self.augment_generator = torch.Generator().manual_seed(train_cfg.seed)

    def update(self, batch: TransitionBatch) -> dict[str, float]:
        self.model.train()
        batch = augment_batch(batch, self.train_cfg.augment_shift, self.augment_generator)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.train_cfg.amp else contextlib.nullcontext()
        with amp:  # bfloat16 matrix products on CUDA when asked; the optimizer keeps float32 weights
            loss, info = self.objective(batch)
        info["lr"] = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.train_cfg.grad_clip:
            info["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        self.update_target()
        return info

    @torch.no_grad()
    def update_target(self):
        tau = self.train_cfg.target_tau
        for p_t, p in zip(self.target.parameters(), self.model.parameters()):
            p_t.lerp_(p, tau)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "target": self.target.state_dict()}

    def load_state_dict(self, state: dict):
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:  # checkpoints from before schedules ran at a constant rate
            self.scheduler.load_state_dict(state["scheduler"])
        # The rate of the next update under this run's config (a resume may change steps or lr).
        self.scheduler.base_lrs = [self.train_cfg.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["lr"] = self.train_cfg.lr * lr_factor(self.train_cfg)(self.scheduler.last_epoch)
        if state.get("target") is not None:  # BC runs from before averaging start it at the resumed weights
            self.target.load_state_dict(state["target"])
