"""Convert recorded episodes (bags, a LeRobot dataset, or an earlier training cache) into tar shards.

Incremental and parallel: the episodes already in the manifest (by content id: a bag's
``bag_fingerprint``, so a moved or copied folder is not converted twice) are not read again; the new
ones are split over `workers` processes, each writing its own shards; the manifest is written once,
at the end. The image size is checked on the first new episode before anything is written.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .bag_io import bag_fingerprint, list_episode_bags, read_episode_bag
from .bag_salvage import find_unfinished
from .episode import EpisodeData
from .lerobot import is_lerobot_dataset
from .shard_format import (LOCK_FILE, SHARD_MB, STREAMS, empty_manifest, is_shard_folder, known_ids, load_manifest,
                           save_manifest)
from .shard_jobs import run_parts
from .shard_writer import ShardSet

MIN_EPISODES_PER_WORKER = 32


def convert_bags(source: str | Path, out_dir: str | Path, image_size: int | None = None, workers: int = 1,
                 progress: bool = True, shard_mb: float = SHARD_MB) -> dict[str, Any]:
    """Convert the episodes of `source` not yet in `out_dir`; returns the manifest (+ ``converted``).

    `source`: a folder of episode bags (completed ones only), a LeRobotDataset v3.0 folder, or a training
    cache of an earlier qt_policy (index.json). ``image_size`` N: frames centre-cropped and resized to N x N
    (observation.prepare_frames, the policy node's rule); None keeps the recorded size, which must be
    square (checked before writing). A shard folder holds one image size: another raises. Unreadable
    bags are listed under ``skipped`` with the reason and not retried. Concurrent calls wait for each
    other (a lock file); a call that finds nothing new leaves the manifest untouched.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _lock(out_dir):
        return _convert_locked(Path(source), out_dir, _norm_size(image_size), max(1, int(workers)), progress,
                               int(shard_mb * 2**20))


def convert_episodes(episodes: Iterable[tuple[str, EpisodeData]], out_dir: str | Path, image_size: int | None = None,
                     progress: bool = True, shard_mb: float = SHARD_MB) -> dict[str, Any]:
    """Write (content id, episode) pairs not yet in `out_dir` into its shards, in this process: episodes made in
    memory (a benchmark's, a simulator's). The rest as `convert_bags`; returns the manifest (+ ``converted``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = _norm_size(image_size)
    with _lock(out_dir):
        manifest = _open_manifest(out_dir, size)
        known = known_ids(manifest)
        return _convert_serial(((fp, ep) for fp, ep in episodes if fp not in known), out_dir, manifest, size,
                               progress, int(shard_mb * 2**20))


def _open_manifest(out_dir: Path, size) -> dict[str, Any]:
    """The folder's manifest (a new one for a new folder), its image size checked, a killed run's leftovers gone."""
    manifest = load_manifest(out_dir) if is_shard_folder(out_dir) else empty_manifest(size)
    if manifest["image_size"] != size:
        raise ValueError(f"{out_dir} holds images of image_size={manifest['image_size']}, not {size}: "
                         "use another output folder")
    _remove_orphans(out_dir, manifest)
    return manifest


def _convert_locked(source: Path, out_dir: Path, size, workers: int, progress: bool, shard_bytes: int):
    manifest = _open_manifest(out_dir, size)
    known = known_ids(manifest)
    if is_lerobot_dataset(source) or (source / "index.json").is_file():
        episodes = _lerobot(source, known, size) if is_lerobot_dataset(source) else _legacy_cache(source, known)
        return _convert_serial(episodes, out_dir, manifest, size, progress, shard_bytes)
    todo = [(str(bag), fp) for bag in list_episode_bags(source) if (fp := bag_fingerprint(bag)) not in known]
    if find_unfinished(source):
        warnings.warn(f"not reading unfinished episode folder(s) in {source} (a recorder crashed, was killed or "
                      f"ran out of disk): the recorder makes bags of them at its next start, or run "
                      f"`qt-salvage {source}`", stacklevel=3)
    if not todo:
        return {**manifest, "converted": 0}
    _check_image_size(Path(todo[0][0]), size)
    first_seq = manifest["next_seq"]
    jobs = [(bag, fp, first_seq + i) for i, (bag, fp) in enumerate(todo)]
    # shards mix the tasks: bags are listed in name order (often task by task), a streaming loader reads
    # a few shards at a time; the seq numbers keep the listing order for everything else
    np.random.default_rng(first_seq).shuffle(jobs)
    prefix = f"c{manifest['conversions']:04d}"
    workers = min(workers, max(1, len(jobs) // MIN_EPISODES_PER_WORKER))  # a process costs ~2 s to start
    parts = [jobs[w::workers] for w in range(workers)]
    results = run_parts(parts, out_dir, prefix, size, shard_bytes, progress)
    for shards, layouts, skipped in results:
        _merge(manifest, shards, layouts)
        manifest["skipped"].extend(skipped)
    converted = sum(s["episodes"] for r in results for s in r[0])
    return _finish(out_dir, manifest, len(jobs), converted)


def _convert_serial(episodes: Iterator[tuple[str, EpisodeData]], out_dir: Path, manifest, size, progress: bool,
                    shard_bytes: int):
    from tqdm.auto import tqdm

    shards = ShardSet(out_dir, f"c{manifest['conversions']:04d}-w0", size, shard_bytes)
    seq = manifest["next_seq"]
    try:
        for fingerprint, ep in tqdm(episodes, desc="episodes -> shards", unit="ep", disable=not progress):
            if seq == manifest["next_seq"]:
                _check_shape(ep.images.shape, size, fingerprint)
            shards.add(ep, seq, fingerprint)
            seq += 1
    except BaseException:
        shards.abort()
        raise
    _merge(manifest, shards.close(), shards.layouts)
    return _finish(out_dir, manifest, seq - manifest["next_seq"], seq - manifest["next_seq"])


def _merge(manifest: dict, shards: list[dict], layouts: dict) -> None:
    """A process's shards into the manifest: instructions by index, layouts by content hash."""
    manifest["layouts"].update(layouts)
    index = {text: i for i, text in enumerate(manifest["instructions"])}
    for shard in shards:
        for g in shard["groups"]:
            if g["instruction"] not in index:
                index[g["instruction"]] = len(manifest["instructions"])
                manifest["instructions"].append(g["instruction"])
            g["instruction"] = index[g["instruction"]]
        manifest["shards"].append(shard)
    manifest["shards"].sort(key=lambda s: s["file"])


def _finish(out_dir: Path, manifest: dict, new: int, converted: int) -> dict[str, Any]:
    if new or not is_shard_folder(out_dir):
        manifest["next_seq"] += new
        manifest["conversions"] += 1
        save_manifest(out_dir, manifest)
    return {**manifest, "converted": converted}


def _remove_orphans(out_dir: Path, manifest: dict) -> None:
    """Shards a killed conversion left (not in the manifest): their episodes convert again."""
    listed = {s["file"] for s in manifest["shards"]}
    for stream in STREAMS:
        for f in (out_dir / stream).glob("*.tar*") if (out_dir / stream).is_dir() else []:
            if f"{stream}/{f.name}" not in listed:
                f.unlink()


def _check_image_size(bag: Path, size) -> None:
    if size is None:
        ep = read_episode_bag(bag)
        _check_shape(ep.images.shape, size, bag)


def _check_shape(shape, size, where) -> None:
    h, w = shape[-3:-1]
    if size is None and h != w:
        raise ValueError(f"{where} holds {w}x{h} frames: the model takes square images; convert with "
                         f"--image-size N (64 is the shipped model's), nothing was written")


def _norm_size(image_size) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int (square images) or None, got {image_size!r}")
    return int(image_size)


class _KnownSources:
    """`source in known` for a LeRobot source string, by its content id (sha1 of the string)."""

    def __init__(self, known: set[str]):
        self.known = known

    def __contains__(self, source: str) -> bool:
        return _source_id(source) in self.known


def _source_id(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def _lerobot(root: Path, known: set[str], size) -> Iterator[tuple[str, EpisodeData]]:
    """A LeRobot dataset's episodes, every camera, identified by the dataset's own ids (lerobot_import.py)."""
    from .lerobot import read_lerobot_episodes
    for source, ep in read_lerobot_episodes(root, skip=_KnownSources(known), image_size=size):
        yield _source_id(source), ep


def _legacy_cache(cache: Path, known: set[str]) -> Iterator[tuple[str, EpisodeData]]:
    """The episodes of a training cache written by an earlier qt_policy (index.json + .npy arrays)."""
    import json

    index = json.loads((cache / "index.json").read_text())
    for e in index["episodes"]:
        fingerprint = e.get("fingerprint") or _source_id(e["source"])
        if fingerprint in known:
            continue
        folder = cache / e["path"]
        states = folder / "states.npy"
        yield fingerprint, EpisodeData(
            instruction=e["instruction"], images=np.load(folder / "images.npy"),
            actions=np.load(folder / "actions.npy"), success=bool(e["success"]),
            action_names=list(e["action_names"]), states=np.load(states) if states.exists() else None,
            state_names=list(e.get("state_names") or []), episode_id=e["id"], end_reason=e.get("end_reason", ""),
            task=e.get("task", ""), embodiment=e.get("embodiment"))


@contextlib.contextmanager
def _lock(out_dir: Path):
    """One conversion of a folder at a time: two trainings started together on one data folder would
    otherwise convert the same bags twice and race on the manifest."""
    with open(out_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
