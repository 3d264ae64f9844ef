"""The training data on disk: episodes in WebDataset tar shards, described by one manifest.

Layout of a shard folder (``BAGS/_shards`` at the bags' image size, ``BAGS/_shards_N`` resized)::

    manifest.json            written once per conversion, atomically; what a run reads first
    convert.lock             held while a conversion runs (concurrent trainings wait)
    successes/*.tar          episodes that ended in success
    failures/*.tar           the others

One tar member group per episode (WebDataset's convention: members sharing a key form one sample):
``<seq>.images.npy`` (T, H, W, 3) or (T, K, H, W, 3) uint8, ``<seq>.actions.npy`` (T, d) float32,
``<seq>.rewards.npy`` (T,) float32, ``<seq>.states.npy`` (T, S) float32 when recorded,
``<seq>.interventions.npy`` (T,) bool when a person drove some steps, and ``<seq>.meta.json`` (id,
instruction, task, success, end_reason, length, layout, seq, fingerprint, operator_steps).

Why tar shards (WebDataset): few large files that stream sequentially from a local disk, a shared
filesystem or object storage, split by node and by loader worker; the open files and memory maps of a
run no longer grow with its episodes (the earlier cache kept four memory maps per episode).
Successes and failures live in separate shards, so the success share of a batch is a mixture of two
streams. The manifest holds per shard its counts by (task, instruction, success, layout) and its
episodes' content ids, and once per dataset the robots' layouts (action and state names, image shape,
cameras, embodiment) and the instructions.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

MANIFEST = "manifest.json"
LOCK_FILE = "convert.lock"
FORMAT = "qt-shards"
VERSION = 1
STREAMS = ("successes", "failures")
#: a shard is closed when it reaches this size; 256 MB gives ~180 shards for 100,000 64x64 episodes
SHARD_MB = 256

def shards_dir_for(data: Path, image_size: int | None) -> Path:
    """Where a folder of bags keeps its shards: ``_shards`` at the bags' own size, ``_shards_N`` resized."""
    return Path(data) / "_shards" if image_size is None else Path(data) / f"_shards_{image_size}"


def is_shard_folder(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def empty_manifest(image_size: int | None) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "image_size": image_size, "image_crop": "center",
            "layouts": {}, "instructions": [], "shards": [], "skipped": [], "next_seq": 0, "conversions": 0}


def load_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """A shard folder's manifest.json; a clear error for anything else (e.g. an earlier cache)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        if (folder / "index.json").is_file():
            raise ValueError(f"{folder} is a training cache of an earlier qt_policy (index.json + episodes/); "
                             f"training now reads tar shards: train from its bags, or convert it once with "
                             f"`qt-convert {folder} OUT_DIR`")
        raise FileNotFoundError(f"{path} not found: not a shard folder (convert bags with qt-convert)")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    return manifest


def save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically (temporary file, fsync, rename): a crash leaves the old one."""
    fd, tmp = tempfile.mkstemp(prefix=MANIFEST + ".", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(manifest, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST)


def group_view(manifest: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """A group as the episode filters see an episode: ``task``, ``instruction``, ``success``."""
    return {"task": group["task"], "instruction": manifest["instructions"][group["instruction"]],
            "success": group["success"], "layout": group["layout"], "operator_steps": group.get("operator_steps", 0)}


def kept_groups(manifest: dict[str, Any], keep: Callable[[dict], bool] | None,
                shards: Iterable[dict] | None = None) -> list[dict[str, Any]]:
    """The groups (episodes, steps and keys) of `shards` (default: all) whose episodes `keep` keeps."""
    out = []
    for shard in manifest["shards"] if shards is None else shards:
        for g in shard["groups"]:
            view = group_view(manifest, g)
            if keep is None or keep(view):
                out.append({**view, "episodes": g["episodes"], "steps": g["steps"], "shard": shard["file"]})
    return out


def count_kept(manifest: dict[str, Any], keep: Callable[[dict], bool] | None,
               failure_steps: str = "all") -> dict[str, Any]:
    """Episodes, steps, successful episodes and instructions a run with filter `keep` trains on (steps: of failed
    episodes only those a person drove, with failure_steps "interventions")."""
    groups = kept_groups(manifest, keep)
    steps = sum(g["steps"] if g["success"] or failure_steps == "all" else g["operator_steps"] for g in groups)
    return {"episodes": sum(g["episodes"] for g in groups), "steps": int(steps),
            "successes": sum(g["episodes"] for g in groups if g["success"]),
            "instructions": sorted({g["instruction"] for g in groups})}


def layout_key(layout: dict[str, Any]) -> str:
    """A layout's name in the manifest: the hash of its content (workers name layouts alike unaided)."""
    import hashlib
    return hashlib.sha1(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:12]


def summarize_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Episodes, steps, success fraction, per-instruction episode counts and shards of a manifest."""
    groups = kept_groups(manifest, None)
    episodes = sum(g["episodes"] for g in groups)
    instructions: dict[str, int] = {}
    for g in groups:
        instructions[g["instruction"]] = instructions.get(g["instruction"], 0) + g["episodes"]
    return {
        "episodes": episodes,
        "steps": int(sum(g["steps"] for g in groups)),
        "success_fraction": sum(g["episodes"] for g in groups if g["success"]) / episodes if episodes else 0.0,
        "instructions": dict(sorted(instructions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "skipped": len(manifest.get("skipped", [])),
        "shards": len(manifest["shards"]),
        "bytes": int(sum(s["bytes"] for s in manifest["shards"])),
    }


def known_ids(manifest: dict[str, Any]) -> set[str]:
    """Content ids of every episode converted or skipped: such an episode is never read again."""
    return {i for s in manifest["shards"] for i in s["ids"]} | {s["id"] for s in manifest.get("skipped", [])}
