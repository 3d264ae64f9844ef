"""What the data decides about a run: its training cache, its robot (embodiment) and the model's shape."""
from __future__ import annotations

import json
from pathlib import Path

from ..core.config import ModelConfig
from ..data.cache import index_image_size


def resolve_cache(data: Path, image_size: int | None, progress: bool = True) -> Path:
    """The training cache of `data`: the folder itself when it is a cache, else the bags' cache (converted now)."""
    from ..data.cache import convert_bags

    data = Path(data)
    if (data / "index.json").is_file():
        return data
    cache = cache_dir_for(data, image_size)
    convert_bags(data, cache, image_size=image_size, progress=progress)
    return cache


def cache_dir_for(data: Path, image_size: int | None) -> Path:
    """Where a folder of bags keeps its cache: ``_cache`` at the bags' own size, ``_cache_N`` resized."""
    return Path(data) / "_cache" if image_size is None else Path(data) / f"_cache_{image_size}"


def data_embodiment(index: dict, requested: Path | None):
    """The embodiment of the training data: `requested`, else the one every episode's bag carries
    (None when the bags carry none). Raises ValueError when the episodes disagree with it."""
    from ..robot.embodiment import Embodiment, load_embodiment

    stored = {json.dumps(e["embodiment"], sort_keys=True) for e in index["episodes"] if e.get("embodiment")}
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
    bad = sorted({tuple(e["action_names"]) for e in index["episodes"]} - {tuple(emb.action_names)})
    if bad:
        raise ValueError(f"embodiment {emb.name!r} has action dimensions {emb.action_names}; episodes in the data "
                         f"have {[list(b) for b in bad]}")
    return emb


def model_config_for(index: dict, overrides: dict, embodiment=None) -> ModelConfig:
    """Shape the model to the data (and its embodiment): action dimensions, names, limits, state size, image size."""
    first = index["episodes"][0]
    d = len(first["action_names"])
    kw = dict(action_dim=d, action_names=list(first["action_names"]), action_low=[-1.0] * d, action_high=[1.0] * d,
              state_dim=len(first.get("state_names") or []))
    if embodiment is not None:
        kw.update(action_low=embodiment.action_low, action_high=embodiment.action_high)
    if first["image_shape"][0] != first["image_shape"][1] and not index.get("image_size"):
        raise ValueError("the cache holds non-square images: convert with --image-size N")
    kw["image_size"] = index_image_size(index)
    cameras = {int(e.get("cameras", 1)) for e in index["episodes"]}
    if len(cameras) != 1:
        raise ValueError(f"the episodes have different numbers of cameras {sorted(cameras)}: train one robot at a time")
    kw["cameras"] = cameras.pop()
    if embodiment is not None and len(embodiment.cameras) != kw["cameras"]:
        raise ValueError(f"embodiment {embodiment.name!r} has {len(embodiment.cameras)} camera(s), the episodes "
                         f"{kw['cameras']}")
    kw.update(overrides)
    return ModelConfig(**kw)
