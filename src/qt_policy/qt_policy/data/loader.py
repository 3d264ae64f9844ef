"""Endless training batches for one training process: assembled in the loop, or by loader workers.

With 0 workers the process's own sampler draws with the run's random generator (the batches of a
given seed are the same as ever). With W workers, a torch DataLoader runs W processes, each a sampler
over its own share of the shards (slot rank x W + worker) with a W-th of the memory budget, yielding
whole batches (collated in the worker), prefetched, in pinned memory when the batches go to a GPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..core.batch import TransitionBatch
from ..core.config import LossConfig, ModelConfig, TrainConfig
from .dataset import TransitionSampler

PREFETCH_BATCHES = 4  # per worker


def slot_batches(folder: Path, model_cfg: ModelConfig, loss_cfg: LossConfig, train_cfg: TrainConfig,
                 texts: dict[str, np.ndarray], keep: Callable[[dict], bool] | None, *, slot: int, slots: int,
                 buffer_mb: float, stream_seed: list[int], rng: np.random.Generator) -> Iterator[TransitionBatch]:
    """Batches forever from loader slot `slot` of `slots`: its shards, its memory, its random streams."""
    sampler = TransitionSampler(folder, model_cfg, loss_cfg, texts.__getitem__, keep, slot=slot, slots=slots,
                                buffer_mb=buffer_mb, stream_seed=stream_seed, failure_steps=train_cfg.failure_steps)
    while True:
        yield sampler.sample(train_cfg.batch_size, rng, train_cfg.success_batch_fraction)


class ShardBatches(torch.utils.data.IterableDataset):
    """Batches forever; each DataLoader worker builds its own sampler over its own shards."""

    def __init__(self, folder: Path, model_cfg: ModelConfig, loss_cfg: LossConfig, train_cfg: TrainConfig,
                 texts: dict[str, np.ndarray], keep: Callable[[dict], bool] | None, rank: int, world: int,
                 start_step: int):
        super().__init__()
        self.data = (folder, model_cfg, loss_cfg, train_cfg, texts, keep)  # slot_batches' first arguments
        self.train_cfg, self.rank, self.world, self.start_step = train_cfg, rank, world, start_step

    def __iter__(self) -> Iterator[TransitionBatch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        seed = [self.train_cfg.seed, self.rank, self.start_step, worker]
        return slot_batches(*self.data, slot=self.rank * workers + worker, slots=self.world * workers,
                            buffer_mb=self.train_cfg.buffer_mb / workers, stream_seed=seed + [1],
                            rng=np.random.default_rng(seed))


def training_batches(folder: Path, model_cfg: ModelConfig, loss_cfg: LossConfig, train_cfg: TrainConfig,
                     texts: dict[str, np.ndarray], keep: Callable[[dict], bool] | None, *, rank: int, world: int,
                     rng: np.random.Generator, start_step: int, pin_memory: bool) -> Iterator[TransitionBatch]:
    """The run's batches: `rng` draws them in this process (0 loader workers), else the workers do."""
    if train_cfg.loader_workers == 0:
        return slot_batches(folder, model_cfg, loss_cfg, train_cfg, texts, keep, slot=rank, slots=world,
                            buffer_mb=train_cfg.buffer_mb, stream_seed=[train_cfg.seed, rank, start_step, 1], rng=rng)
    loader = torch.utils.data.DataLoader(
        ShardBatches(folder, model_cfg, loss_cfg, train_cfg, texts, keep, rank, world, start_step),
        batch_size=None, num_workers=train_cfg.loader_workers, pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES, persistent_workers=True)
    return (batch for batch in loader)
