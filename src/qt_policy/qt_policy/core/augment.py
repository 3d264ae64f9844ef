"""Random-shift image augmentation for training (DrQ: Kostrikov, Yarats, Fergus 2020).

Value learning from pixels on a few hundred episodes overfits the exact frames it saw; shifting
every frame by a few pixels (edge pixels replicated, as DrQ pads) is the standard cure for
pixel-based Q-learning. One shift per sample: the frames of its history move together, so the
motion between them is kept. s_t and s_{t+n} are shifted independently, as in DrQ.
Acting never augments.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .batch import Observation, TransitionBatch


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each sample of (B, F, H, W, C) images (or (B, F, K, H, W, C), K cameras: all by the
    same shift) by up to `pad` pixels per axis, replicating edges.

    Equal to replicate-padding by `pad` and cropping a random HxW window; integer shifts, so every
    output pixel is an input pixel (uint8 stays uint8, nothing is interpolated).
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0 or images.numel() == 0:
        return images
    if images.dim() == 6:
        return random_shift(images.flatten(1, 2), pad, generator).view(images.shape)
    b, _, h, w, _ = images.shape
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).tolist()
    # Replicate-pad once (index_select of clamped rows/columns), then one crop per sample: far
    # faster on the CPU than a per-pixel gather.
    rows = torch.arange(-pad, h + pad, device=images.device).clamp_(0, h - 1)
    cols = torch.arange(-pad, w + pad, device=images.device).clamp_(0, w - 1)
    padded = images.index_select(2, rows).index_select(3, cols)
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def _shift_observation(obs: Observation, pad: int, generator: torch.Generator | None) -> Observation:
    if obs.images is None:
        return obs
    return replace(obs, images=random_shift(obs.images, pad, generator))


def augment_batch(batch: TransitionBatch, pad: int, generator: torch.Generator | None = None) -> TransitionBatch:
    """The batch with s_t and s_{t+n} randomly shifted (independently); everything else as it was."""
    if pad == 0:
        return batch
    return replace(batch, obs=_shift_observation(batch.obs, pad, generator),
                   next_obs=_shift_observation(batch.next_obs, pad, generator))
