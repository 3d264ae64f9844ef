"""What the data decides about a run: its shard folder, its robot (embodiment) and the model's shape."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..core.config import ModelConfig


def resolve_shards(data: Path, image_size: int | None, progress: bool = True, convert: bool = True) -> Path:
    """The shard folder of `data`: the folder itself when it holds a manifest, else the shards of its bags (or
    of an earlier qt_policy's training cache), with new episodes converted now when `convert` (a single
    process; under torchrun conversion is its own step and a missing shard folder is an error)."""
    from ..data.convert import convert_bags
    from ..data.shard_format import is_shard_folder, shards_dir_for

    data = Path(data)
    if is_shard_folder(data):
        return data
    shards = shards_dir_for(data, image_size)
    if not convert:
        if not is_shard_folder(shards):
            size = f" --image-size {image_size}" if image_size else ""
            raise ValueError(f"{shards} does not exist: under torchrun, convert the data first, in one process: "
                             f"`qt-convert {data} {shards}{size} --workers N`, then start the ranks")
        _mention_unconverted(data, shards)
        return shards
    _mention_old_caches(data)
    convert_bags(data, shards, image_size=image_size, workers=os.cpu_count() or 1, progress=progress)
    return shards


def saved_shards(data: Path, saved: dict, image_size: int | None, *, convert: bool, progress: bool) -> Path:
    """The shard folder a resumed run reads: its own, or, for a run of an earlier qt_policy that read a
    training cache (``BAGS/_cache`` or ``_cache_N``), the shards of the same bags at the same size."""
    if "shards" in saved["data"]:
        return Path(saved["data"]["shards"])
    cache = Path(saved["data"]["cache"])
    if cache.name == "_cache" or cache.name.startswith("_cache_"):
        return resolve_shards(cache.parent, image_size if cache.name != "_cache" else None, progress, convert)
    return resolve_shards(cache, image_size if image_size != _cache_side(cache) else None, progress, convert)


def _cache_side(cache: Path) -> int | None:
    try:
        return json.loads((cache / "index.json").read_text()).get("image_size")
    except (OSError, ValueError):
        return None


def _mention_unconverted(data: Path, shards: Path) -> None:
    """Under torchrun the run trains on the shards as they are: say when the folder holds more bags."""
    from ..data.bag_io import list_episode_bags
    from ..data.shard_format import load_manifest, summarize_manifest

    s = summarize_manifest(load_manifest(shards))
    extra = len(list_episode_bags(data)) - s["episodes"] - s["skipped"]
    if extra > 0:
        warnings.warn(f"{data} holds {extra} bag(s) not in {shards}: this run trains without them "
                      f"(`qt-convert {data} {shards}` adds them)", stacklevel=3)


def _mention_old_caches(data: Path) -> None:
    """Say once that an earlier training cache beside the bags is no longer read (and what it takes)."""
    for old in sorted(data.glob("_cache*")):
        if (old / "index.json").is_file():
            size = sum(f.stat().st_size for f in old.rglob("*.npy"))
            warnings.warn(f"{old} is the training cache of an earlier qt_policy and is no longer read (training "
                          f"reads tar shards now, converted next to it): delete it to free {size / 1e9:.1f} GB",
                          stacklevel=3)


def data_embodiment(manifest: dict, requested: Path | None):
    """The embodiment of the training data: `requested`, else the one every episode's bag carries
    (None when the bags carry none). Raises ValueError when the episodes disagree with it."""
    from ..robot.embodiment import Embodiment, load_embodiment

    layouts = list(manifest["layouts"].values())
    stored = {json.dumps(lay["embodiment"], sort_keys=True) for lay in layouts if lay.get("embodiment")}
    if requested is not None:
        emb = load_embodiment(requested)
    elif len(stored) > 1:
        names = sorted({json.loads(x).get("name", "?") for x in stored})
        raise ValueError(f"the episodes were recorded with {len(stored)} different embodiments {names}: train one "
                         "robot at a time, or pass --embodiment")
    elif stored:
        emb = Embodiment.from_dict(json.loads(stored.pop()))
    else:
        return None
    bad = sorted({tuple(lay["action_names"]) for lay in layouts} - {tuple(emb.action_names)})
    if bad:
        raise ValueError(f"embodiment {emb.name!r} has action dimensions {emb.action_names}; episodes in the data "
                         f"have {[list(b) for b in bad]}")
    return emb


def model_config_for(manifest: dict, overrides: dict, embodiment=None) -> ModelConfig:
    """Shape the model to the data (and its embodiment): action dimensions, names, limits, state size, image size."""
    layouts = list(manifest["layouts"].values())
    if not layouts:
        raise ValueError("the shard folder holds no episode")
    first = layouts[0]
    if len({len(lay["action_names"]) for lay in layouts}) != 1:
        raise ValueError(f"the episodes have different numbers of action dimensions "
                         f"{sorted({len(lay['action_names']) for lay in layouts})}: train one robot at a time")
    d = len(first["action_names"])
    kw = dict(action_dim=d, action_names=list(first["action_names"]), action_low=[-1.0] * d, action_high=[1.0] * d,
              state_dim=len(first.get("state_names") or []))
    if embodiment is not None:
        kw.update(action_low=embodiment.action_low, action_high=embodiment.action_high)
    if first["image_shape"][0] != first["image_shape"][1] and not manifest.get("image_size"):
        raise ValueError("the shards hold non-square images: convert with --image-size N")
    kw["image_size"] = int(manifest.get("image_size") or first["image_shape"][1])
    cameras = {int(lay.get("cameras", 1)) for lay in layouts}
    if len(cameras) != 1:
        raise ValueError(f"the episodes have different numbers of cameras {sorted(cameras)}: train one robot at a time")
    kw["cameras"] = cameras.pop()
    if embodiment is not None and len(embodiment.cameras) != kw["cameras"]:
        raise ValueError(f"embodiment {embodiment.name!r} has {len(embodiment.cameras)} camera(s), the episodes "
                         f"{kw['cameras']}")
    kw.update(overrides)
    return ModelConfig(**kw)
