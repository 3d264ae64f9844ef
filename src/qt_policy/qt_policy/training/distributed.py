"""Data-parallel set-up for a training run under torchrun (WORLD_SIZE > 1): NCCL between GPUs (each rank
on its node's GPU LOCAL_RANK), gloo between CPU processes. Every rank reads its own shards and draws its
own batches, the gradients are averaged (DDP), and at the end the ranks' weights are compared. Several
machines: the same torchrun command on each (`--nnodes N --node-rank i --rdzv-backend c10d
--rdzv-endpoint HOST:PORT`, README)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class Ranks:
    world: int  # processes training together (1: no data parallelism)
    rank: int  # this process
    device: str = "cpu"  # where this rank trains: cuda:LOCAL_RANK under torchrun on GPUs
    dist: Any = None  # torch.distributed while a process group is up

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder and the logs."""
        return self.rank == 0


def join(threads: int | None, device: str = "cpu") -> Ranks:
    """This process's rank (torchrun's WORLD_SIZE / RANK / LOCAL_RANK), its device, its process group
    (NCCL on CUDA, gloo on CPU) and its torch threads (default: the cores shared among the node's ranks)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda and world > 1 and torch.device(device).index is None:
        device = f"cuda:{local_rank}"  # one GPU per rank on its node
    if cuda and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))
    ranks = Ranks(world=world, rank=int(os.environ.get("RANK", "0")), device=device)
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        ranks.dist = dist
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    return ranks


def wrapper(ranks: Ranks) -> Callable | None:
    """How the learner wraps the network: DDP when several ranks train (on this rank's GPU), else not at all."""
    if ranks.dist is None:
        return None
    from torch.nn.parallel import DistributedDataParallel as DDP
    if torch.device(ranks.device).type == "cuda":
        index = torch.device(ranks.device).index
        return lambda m: DDP(m, device_ids=[index], output_device=index)
    return lambda m: DDP(m)


def leave(ranks: Ranks, model, log: Callable[[str], None]) -> bool:
    """End the process group; True when every rank holds the same weights (each saw other batches, so
    identical weights prove the gradients were averaged). Without data parallelism: True."""
    if ranks.dist is None:
        return True
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])  # on the rank's device (NCCL: GPU)
    ref = flat.clone()
    ranks.dist.broadcast(ref, src=0)
    mismatch = torch.tensor([float(not torch.equal(flat, ref))], device=flat.device)
    ranks.dist.all_reduce(mismatch)
    in_sync = mismatch.item() == 0
    if ranks.is_main:
        log("ranks in sync" if in_sync else "RANKS OUT OF SYNC")
    ranks.dist.destroy_process_group()
    return in_sync
