"""Episodes out of tar shards, and which shards a loader slot (rank x worker) reads.

Reading goes through WebDataset (`tarfile_samples`: one open file at a time, sequential reads, local
paths or any URL WebDataset opens). A slot reads a disjoint share of a stream's shards when the
stream has at least one shard per slot; a smaller stream (a few success shards, a small dataset) is
read by every slot, each in its own order: sampling is random anyway, and no slot goes without it.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .shard_format import STREAMS, group_view

ARRAYS = ("images", "actions", "rewards", "states", "interventions")


def read_shard(folder: Path, shard_file: str) -> Iterator[dict[str, Any]]:
    """Every episode of one shard, in order: ``meta`` (dict) and its arrays (``states`` when recorded)."""
    import webdataset as wds

    for sample in wds.tarfile_samples([{"url": str(Path(folder) / shard_file)}]):
        episode = {"meta": json.loads(sample["meta.json"])}
        for name in ARRAYS:
            raw = sample.get(f"{name}.npy")
            if raw is not None:
                episode[name] = np.load(io.BytesIO(raw))
        yield episode


def read_all(folder: Path, manifest: dict, keep: Callable[[dict], bool] | None = None) -> list[dict[str, Any]]:
    """Every kept episode of a shard folder, in conversion order (tests, tools; not for large data)."""
    out = [ep for s in manifest["shards"] for ep in read_shard(folder, s["file"]) if keep is None or keep(ep["meta"])]
    return sorted(out, key=lambda ep: ep["meta"]["seq"])


def stream_shards(manifest: dict, keep: Callable[[dict], bool] | None) -> dict[str, list[dict]]:
    """The shards of each stream holding at least one kept episode."""
    out = {s: [] for s in STREAMS}
    for shard in manifest["shards"]:
        if any(keep is None or keep(group_view(manifest, g)) for g in shard["groups"]):
            out[STREAMS[0] if shard["success"] else STREAMS[1]].append(shard)
    return out


def slot_shards(shards: list[dict], slot: int, slots: int) -> list[dict]:
    """The shards slot `slot` of `slots` reads: a disjoint share when there are enough, else all."""
    if not 0 <= slot < slots:
        raise ValueError(f"slot {slot} of {slots}")
    return shards[slot::slots] if len(shards) >= slots else list(shards)


def endless_episodes(folder: Path, shards: list[dict], keep: Callable[[dict], bool] | None,
                     rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    """The kept episodes of `shards`, shard after shard in a new random order each pass, forever."""
    if not shards:
        return
    while True:
        for i in rng.permutation(len(shards)):
            for ep in read_shard(folder, shards[i]["file"]):
                if keep is None or keep(ep["meta"]):
                    yield ep
