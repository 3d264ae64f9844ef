"""Tensor containers passed between the dataset, the losses and the model."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class Observation:
    """What the model sees at one step: camera frame history, instruction embedding, robot state."""

    text: torch.Tensor  # (B, text_dim)
    images: torch.Tensor | None = None  # (B, F, H, W, 3) uint8
    state: torch.Tensor | None = None  # (B, state_dim)

    def to(self, device, non_blocking: bool = False) -> "Observation":
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                for f in fields(self) if getattr(self, f.name) is not None})

    def pin_memory(self) -> "Observation":
        """Page-locked copies (torch's DataLoader calls this with pin_memory=True): faster copies to a GPU."""
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self) if getattr(self, f.name) is not None})


@dataclass
class TransitionBatch:
    """n-step transitions: (s_t, a_t) with the discounted reward sum up to s_{t+n} and MC return-to-go."""

    obs: Observation
    action_bins: torch.Tensor  # (B, d) long, dataset action
    reward_sum: torch.Tensor  # (B,) sum_{j<m} gamma^j r_{t+j}
    discount: torch.Tensor  # (B,) gamma^n, or 0 when s_{t+n} lies past the episode end
    next_obs: Observation  # s_{t+n} (any valid frame when discount is 0)
    mc_return: torch.Tensor  # (B,) return-to-go of the dataset episode from t

    def to(self, device, non_blocking: bool = False) -> "TransitionBatch":
        return TransitionBatch(*(getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)))

    def pin_memory(self) -> "TransitionBatch":
        return TransitionBatch(*(getattr(self, f.name).pin_memory() for f in fields(self)))

    def __len__(self) -> int:
        return self.action_bins.shape[0]
