"""The converter's parts: each reads its bags and writes its own shards, in this process for one part,
else one spawned process per part.

Spawned, not forked: the caller may be a training process with torch's thread pools running, and a
fork copies locks held by other threads. Progress comes back through a queue, one tick per episode.
"""
from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import warnings
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

from .bag_io import EpisodeBagError, read_episode_bag
from .shard_writer import ShardSet


def run_parts(parts: list[list], out_dir: Path, prefix: str, size, shard_bytes: int, progress: bool) -> list:
    """convert_part for each part (part w writes ``<prefix>-w<w>-*.tar``); results in part order."""
    from tqdm.auto import tqdm

    total = sum(len(p) for p in parts)
    with tqdm(total=total, desc="episodes -> shards", unit="ep", disable=not progress) as bar:
        if len(parts) == 1:
            return [convert_part(parts[0], out_dir, f"{prefix}-w0", size, shard_bytes, tick=lambda: bar.update())]
        ctx = mp.get_context("spawn")
        with ctx.Manager() as manager, ProcessPoolExecutor(len(parts), mp_context=ctx) as pool:
            ticks = manager.Queue()
            futures = [pool.submit(_part_with_ticks, part, out_dir, f"{prefix}-w{w}", size, shard_bytes, ticks)
                       for w, part in enumerate(parts)]
            while not all(f.done() for f in futures):
                _drain(ticks, bar, timeout=0.2)
                wait(futures, timeout=0)
            _drain(ticks, bar, timeout=0)
            return [f.result() for f in futures]  # a part's exception is raised here


def _part_with_ticks(part, out_dir, prefix, size, shard_bytes, ticks):
    return convert_part(part, out_dir, prefix, size, shard_bytes, tick=lambda: ticks.put(1))


def convert_part(jobs: list[tuple[str, str, int]], out_dir: Path, prefix: str, size, shard_bytes: int,
                 tick=lambda: None) -> tuple[list[dict], dict, list[dict]]:
    """One converter process's share: read its bags, write its shards. Returns (shards, layouts, skipped)."""
    shards = ShardSet(out_dir, prefix, size, shard_bytes)
    skipped = []
    try:
        for bag, fingerprint, seq in jobs:
            try:
                ep = read_episode_bag(bag, image_size=size)
            except EpisodeBagError as err:
                warnings.warn(f"skipping {bag}: {err}", stacklevel=2)
                skipped.append({"id": fingerprint, "source": bag, "reason": str(err)})
            else:
                shards.add(ep, seq, fingerprint)
            tick()
    except BaseException:
        shards.abort()
        raise
    return shards.close(), shards.layouts, skipped


def _drain(ticks, bar, timeout: float) -> None:
    try:
        ticks.get(timeout=timeout) if timeout else ticks.get_nowait()
        bar.update()
        while True:
            ticks.get_nowait()
            bar.update()
    except queue_mod.Empty:
        pass
