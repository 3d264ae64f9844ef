"""Per-dimension uniform discretization of continuous actions into bins.

Bin centres are spaced evenly from `low` to `high` inclusive, so the bounds themselves are
bin centres (edge bins). Scripted and human actions often saturate at the limits, and this keeps
a saturated action exact after a round trip. Round-trip error is at most half a bin spacing.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _is_tensor(x) -> bool:
    """A torch tensor? Without importing torch: the policy runner bins an operator's actions with numpy in a
    deployment that has no torch (ONNX Runtime); a tensor exists only where torch is imported already."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


@dataclass(frozen=True)
class Discretizer:
    low: tuple[float, ...]
    high: tuple[float, ...]
    num_bins: int = 256

    def __post_init__(self):
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError(f"low and high need the same non-zero length, got {self.low} and {self.high}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")
        for lo, hi in zip(self.low, self.high):
            if not hi > lo:
                raise ValueError(f"every high must exceed its low, got low={lo} high={hi}")

    @classmethod
    def uniform(cls, action_dim: int, low: float = -1.0, high: float = 1.0, num_bins: int = 256) -> "Discretizer":
        return cls(tuple([float(low)] * action_dim), tuple([float(high)] * action_dim), num_bins)

    @property
    def action_dim(self) -> int:
        return len(self.low)

    @property
    def bin_width(self) -> np.ndarray:
        """Distance between neighbouring bin centres, per dimension."""
        return (np.asarray(self.high) - np.asarray(self.low)) / (self.num_bins - 1)

    def _bounds(self, like):
        if _is_tensor(like):
            import torch
            lo = torch.as_tensor(self.low, dtype=torch.float64, device=like.device)
            hi = torch.as_tensor(self.high, dtype=torch.float64, device=like.device)
        else:
            lo, hi = np.asarray(self.low, dtype=np.float64), np.asarray(self.high, dtype=np.float64)
        return lo, hi

    def to_bins(self, actions):
        """Continuous actions (..., d) -> bin indices (..., d). Out-of-range values clip to edge bins."""
        lo, hi = self._bounds(actions)
        if _is_tensor(actions):
            import torch
            scaled = (actions.double() - lo) / (hi - lo) * (self.num_bins - 1)
            return torch.round(scaled).clamp(0, self.num_bins - 1).long()
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"expected last dimension {self.action_dim}, got shape {actions.shape}")
        scaled = (actions - lo) / (hi - lo) * (self.num_bins - 1)
        return np.clip(np.rint(scaled), 0, self.num_bins - 1).astype(np.int64)

    def to_values(self, bins):
        """Bin indices (..., d) -> continuous bin centres (..., d)."""
        lo, hi = self._bounds(bins)
        if _is_tensor(bins):
            return (lo + bins.double() / (self.num_bins - 1) * (hi - lo)).float()
        bins = np.asarray(bins)
        return (lo + bins / (self.num_bins - 1) * (hi - lo)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"low": list(self.low), "high": list(self.high), "num_bins": self.num_bins}

    @classmethod
    def from_dict(cls, d: dict) -> "Discretizer":
        return cls(tuple(float(x) for x in d["low"]), tuple(float(x) for x in d["high"]), int(d["num_bins"]))


def make_discretizer(low: Sequence[float], high: Sequence[float], num_bins: int = 256) -> Discretizer:
    return Discretizer(tuple(float(x) for x in low), tuple(float(x) for x in high), int(num_bins))
