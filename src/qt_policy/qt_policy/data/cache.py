"""Training cache: episode bags converted once into memory-mappable ``.npy`` arrays.

Layout of ``cache_dir``::

    index.json
    convert.lock                 held while a conversion runs (concurrent trainings wait)
    episodes/<key>/images.npy    (T, H, W, 3) uint8 RGB; (T, K, H, W, 3) for a robot with K >= 2 cameras
    episodes/<key>/actions.npy   (T, d) float32
    episodes/<key>/rewards.npy   (T,) float32 (1 on the last step of a successful episode)
    episodes/<key>/states.npy    (T, S) float32, only when the bag has /robot_state

Arrays are plain uncompressed ``.npy`` files, opened with ``np.load(mmap_mode='r')`` so training never
holds the dataset in RAM. ``index.json`` lists the episodes (see :func:`convert_bags`); conversion is
incremental: a bag whose resolved path or metadata.yaml hash is already in the index (converted or
skipped) is not read again.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .bag_io import EpisodeBagError, bag_fingerprint, list_episode_bags, read_episode_bag
from .bag_salvage import find_unfinished
from .lerobot import is_lerobot_dataset
from .observation import prepare_frames
from .episode import EpisodeData

INDEX_FILE = "index.json"
LOCK_FILE = "convert.lock"
EPISODES_DIR = "episodes"
INDEX_VERSION = 1
ARRAY_NAMES = ("images", "actions", "rewards", "states")
_SAVE_EVERY_S = 10.0


def _norm_size(image_size) -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int (square images) or None, got {image_size!r}")
    return int(image_size)



def _empty_index(image_size) -> dict[str, Any]:
    return {"version": INDEX_VERSION, "image_size": image_size, "image_crop": "center",
            "episodes": [], "skipped": []}


def load_index(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """The cache's index.json (``{"version", "image_size", "episodes": [...], "skipped": [...]}``)."""
    path = Path(cache_dir) / INDEX_FILE
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if index.get("version") != INDEX_VERSION:
        raise ValueError(f"{path}: unsupported cache index version {index.get('version')!r}")
    return index


def index_image_size(index: dict[str, Any]) -> int:
    """Side of the images a cache holds: its resize target, else the first episode's recorded width."""
    return int(index.get("image_size") or index["episodes"][0]["image_shape"][1])


def _save_index(cache_dir: Path, index: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=INDEX_FILE + ".", suffix=".tmp", dir=cache_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, cache_dir / INDEX_FILE)


def open_episode_arrays(cache_dir: str | os.PathLike, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """Read-only memory maps of one episode: ``images``, ``actions``, ``rewards`` and ``states`` if any."""
    folder = Path(cache_dir) / entry["path"]
    out = {}
    for name in ARRAY_NAMES:
        f = folder / f"{name}.npy"
        if f.exists():
            out[name] = np.load(f, mmap_mode="r")
        elif name != "states":
            raise FileNotFoundError(f"{f} missing from the cache")
    return out


def _unique_key(name: str, used: set[str]) -> str:
    key, i = name, 1
    while key in used:
        key = f"{name}_{i}"
        i += 1
    return key


def _write_episode(folder: Path, ep: EpisodeData, image_size) -> tuple[int, ...]:
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    images = prepare_frames(ep.images, image_size) if image_size else ep.images  # the node's rule
    np.save(tmp / "images.npy", np.ascontiguousarray(images, dtype=np.uint8))
    np.save(tmp / "actions.npy", np.ascontiguousarray(ep.actions, dtype=np.float32))
    np.save(tmp / "rewards.npy", ep.rewards.astype(np.float32))
    if ep.states is not None:
        np.save(tmp / "states.npy", np.ascontiguousarray(ep.states, dtype=np.float32))
    if folder.exists():  # leftover of an interrupted run that never reached the index
        shutil.rmtree(folder)
    os.rename(tmp, folder)
    return images.shape[-3:]


@contextlib.contextmanager
def _conversion_lock(cache_dir: Path):
    """One conversion of a cache at a time: two trainings started together on one data folder
    would otherwise convert the same bags twice and race on the index."""
    with open(cache_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def convert_bags(bag_dir: str | os.PathLike, cache_dir: str | os.PathLike, image_size=None,
                 progress: bool = True) -> dict[str, Any]:
    """Convert every completed episode bag in ``bag_dir`` not yet in the cache; returns the index.

    ``image_size``: int N: images not N x N are centre-cropped to a square and resized to N x N with cv2.INTER_AREA
    (``observation.prepare_frame``, the policy node's rule); None keeps the bags'
    size (``index["image_size"]`` stays None; each entry's ``image_shape`` tells). A cache holds one
    image_size: re-running with another raises.
    Index entries: ``key, id, path, length, instruction, success, task, end_reason, action_names,
    state_names, image_shape, has_states, source, fingerprint``. A bag is new when neither its path
    nor its fingerprint (``bag_fingerprint``) is in the index, so a moved folder is not converted
    twice. Bags that cannot be read (no /episode_result, 0 steps, ...) are listed under ``skipped`` with the reason and a warning, and not retried.
    ``index["converted"]`` (not saved) = number of bags converted by this call.
    Concurrent calls on one cache wait for each other (a lock file in the cache); a call that finds
    nothing new leaves index.json untouched.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(cache_dir):
        return _convert_locked(bag_dir, cache_dir, image_size, progress)


def _convert_locked(bag_dir, cache_dir: Path, image_size, progress: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    size = _norm_size(image_size)
    (cache_dir / EPISODES_DIR).mkdir(exist_ok=True)
    if (cache_dir / INDEX_FILE).exists():
        index = load_index(cache_dir)
        have = index.get("image_size")
        if have != size:
            raise ValueError(f"{cache_dir} was built with image_size={have}, not {size}: use another cache dir")
    else:
        index = _empty_index(size)

    entries = index["episodes"] + index["skipped"]
    changed = not (cache_dir / INDEX_FILE).exists()
    for e in entries:  # caches from before fingerprints: add them while the bags are still where they were
        if "fingerprint" not in e and (Path(e["source"]) / "metadata.yaml").is_file():
            e["fingerprint"] = bag_fingerprint(Path(e["source"]))
            changed = True
    known = {e["source"] for e in entries} | {e["fingerprint"] for e in entries if "fingerprint" in e}
    keys = {e["key"] for e in index["episodes"]}
    if is_lerobot_dataset(bag_dir):  # a LeRobotDataset v3.0 folder instead of episode bags
        return _convert_lerobot(bag_dir, cache_dir, index, known, keys, size, changed, progress)
    todo = []  # (bag, source, fingerprint); a bag known by its path is not hashed
    for bag in list_episode_bags(bag_dir):
        source = str(bag.resolve())
        if source not in known and (fingerprint := bag_fingerprint(bag)) not in known:
            todo.append((bag, source, fingerprint))
    unfinished = find_unfinished(bag_dir)
    if unfinished:
        warnings.warn(f"not reading {len(unfinished)} unfinished episode folder(s) in {bag_dir} (a recorder crashed, "
                      "was killed or ran out of disk): the recorder makes bags of them at its next start, or run "
                      f"`qt-salvage {bag_dir}`", stacklevel=2)
    converted, last_save = 0, time.monotonic()
    for bag, source, fingerprint in tqdm(todo, desc="bags -> cache", unit="ep", disable=not progress or not todo):
        try:
            ep = read_episode_bag(bag, image_size=size)
        except EpisodeBagError as err:
            warnings.warn(f"skipping {bag}: {err}", stacklevel=2)
            index["skipped"].append({"source": source, "fingerprint": fingerprint, "reason": str(err)})
            changed = True
            continue
        _add_episode(cache_dir, index, keys, bag.name, ep, size, source, fingerprint)
        converted += 1
        if time.monotonic() - last_save > _SAVE_EVERY_S:
            _save_index(cache_dir, index)
            last_save = time.monotonic()
    if changed or converted:
        _save_index(cache_dir, index)
    index["converted"] = converted
    return index


def _add_episode(cache_dir: Path, index, keys: set, name: str, ep: EpisodeData, size, source: str,
                 fingerprint: str) -> None:
    key = _unique_key(name, keys)
    keys.add(key)
    rel = f"{EPISODES_DIR}/{key}"
    shape = _write_episode(cache_dir / rel, ep, size)
    index["episodes"].append({
        "key": key, "id": ep.episode_id or name, "path": rel, "length": len(ep),
        "instruction": ep.instruction, "success": bool(ep.success), "task": ep.task,
        "end_reason": ep.end_reason, "action_names": list(ep.action_names),
        "state_names": list(ep.state_names), "image_shape": [int(x) for x in shape], "cameras": ep.num_cameras,
        "has_states": ep.states is not None, "source": source, "fingerprint": fingerprint,
        "embodiment": ep.embodiment,
    })


def _convert_lerobot(root, cache_dir: Path, index, known: set, keys: set, size, changed: bool,
                     progress: bool) -> dict[str, Any]:
    """The episodes of a LeRobotDataset v3.0 folder not in the cache yet (data/lerobot.py reads them)."""
    from tqdm.auto import tqdm

    from .lerobot import read_lerobot_episodes

    converted = 0
    for source, ep in tqdm(read_lerobot_episodes(root, skip=known), desc="LeRobot -> cache", unit="ep",
                           disable=not progress):
        fingerprint = hashlib.sha1(source.encode()).hexdigest()
        _add_episode(cache_dir, index, keys, ep.episode_id, ep, size, source, fingerprint)
        converted += 1
    if changed or converted:
        _save_index(cache_dir, index)
    index["converted"] = converted
    return index


def summarize_index(index: dict[str, Any]) -> dict[str, Any]:
    """Episodes, steps, success fraction and per-instruction episode counts of an index."""
    eps = index.get("episodes", [])
    instructions: dict[str, int] = {}
    for e in eps:
        instructions[e["instruction"]] = instructions.get(e["instruction"], 0) + 1
    return {
        "episodes": len(eps),
        "steps": int(sum(e["length"] for e in eps)),
        "success_fraction": (sum(bool(e["success"]) for e in eps) / len(eps)) if eps else 0.0,
        "instructions": dict(sorted(instructions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "skipped": len(index.get("skipped", [])),
    }
