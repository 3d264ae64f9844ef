"""Data-parallel set-up for a training run under torchrun (WORLD_SIZE > 1, gloo on CPU): every rank
draws its own batches, the gradients are averaged (DDP), and at the end the ranks' weights are compared."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class Ranks:
    world: int  # processes training together (1: no data parallelism)
    rank: int  # this process
    dist: Any = None  # torch.distributed while a process group is up

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder and the logs."""
        return self.rank == 0


def join(threads: int | None) -> Ranks:
    """This process's rank (torchrun's WORLD_SIZE / RANK), its process group, and its torch threads
    (default: the cores shared among the ranks)."""
    ranks = Ranks(world=int(os.environ.get("WORLD_SIZE", "1")), rank=int(os.environ.get("RANK", "0")))
    if ranks.world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        ranks.dist = dist
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // ranks.world))
    return ranks


def wrapper(ranks: Ranks) -> Callable | None:
    """How the learner wraps the network: DDP when several ranks train, else not at all."""
    if ranks.dist is None:
        return None
    from torch.nn.parallel import DistributedDataParallel as DDP
    return lambda m: DDP(m)


def broadcast_path(ranks: Ranks, path):
    """Rank 0's value of `path` on every rank (the training cache only rank 0 converts)."""
    if ranks.dist is None:
        return path
    holder = [str(path) if path else None]
    ranks.dist.broadcast_object_list(holder, src=0)
    return holder[0]


def leave(ranks: Ranks, model, log: Callable[[str], None]) -> bool:
    """End the process group; True when every rank holds the same weights (each saw other batches, so
    identical weights prove the gradients were averaged). Without data parallelism: True."""
    if ranks.dist is None:
        return True
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    ref = flat.clone()
    ranks.dist.broadcast(ref, src=0)
    mismatch = torch.tensor([float(not torch.equal(flat, ref))])
    ranks.dist.all_reduce(mismatch)
    in_sync = mismatch.item() == 0
    if ranks.is_main:
        log("ranks in sync" if in_sync else "RANKS OUT OF SYNC")
    ranks.dist.destroy_process_group()
    return in_sync
