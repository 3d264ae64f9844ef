"""What a training run will be, before anything trains: its configs (the preset, the overrides, the
algorithm's needs, the model's shape from the data), its cache, and where it starts. A resume takes
the run's saved configs back (with the training overrides applied, e.g. more steps)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.algorithms import model_requirements
from ..core.checkpoint import read_config
from ..core.config import (LossConfig, ModelConfig, TrainConfig, from_dict, preset, upgrade_loss_dict,
                           upgrade_train_dict)
from .data_shape import data_embodiment, model_config_for, resolve_shards, saved_shards
from .distributed import Ranks
from .run_folder import check_same_data, resume_dir


@dataclass
class RunPlan:
    model_cfg: ModelConfig
    loss_cfg: LossConfig
    train_cfg: TrainConfig
    shards: Path  # the shard folder the batches come from
    preset_name: str
    success_only: bool
    embodiment: dict | None  # the robot the data was recorded on (stored in the checkpoint)
    start_step: int = 0
    previous: Path | None = None  # the folder a resume reads
    saved: dict | None = None  # its config.json


def split_overrides(overrides: dict[str, Any]) -> tuple[dict, dict, dict]:
    """Flat field settings (num_bins=..., value_loss=..., steps=...) -> (model, loss, train) dicts."""
    sections = [{f.name for f in dataclasses.fields(c)} for c in (ModelConfig, LossConfig, TrainConfig)]
    out: tuple[dict, dict, dict] = ({}, {}, {})
    for key, value in overrides.items():
        where = [i for i, names in enumerate(sections) if key in names]
        if not where:
            raise ValueError(f"unknown training setting {key!r}; known: {sorted(set().union(*sections))}")
        out[where[0]][key] = value
    return out


def plan_run(data: Path, out: Path, preset_name: str, overrides: tuple[dict, dict, dict], *, success_only: bool,
             embodiment: Path | None, resume: bool, progress: bool, ranks: Ranks) -> RunPlan:
    """The run `fit` will train: resumed from `out` when asked and possible, else a fresh one on `data`
    (a single process converts new bags into the shards first; under torchrun conversion is its own
    step, qt-convert, before the run). `overrides`: split_overrides' (model, loss, train) settings."""
    from ..data.shard_format import load_manifest

    model_over, loss_over, train_over = overrides
    previous = resume_dir(out) if resume else None
    if previous is not None:
        saved = read_config(previous)
        model_cfg = from_dict(ModelConfig, saved["model"])
        shards = saved_shards(Path(data), saved, model_cfg.image_size, convert=ranks.world == 1, progress=progress)
        check_same_data(Path(data), shards)
        return RunPlan(model_cfg=model_cfg,
                       loss_cfg=from_dict(LossConfig, upgrade_loss_dict(saved["loss"], model_cfg.num_bins)),
                       train_cfg=from_dict(TrainConfig, {**upgrade_train_dict(saved["train"]), **train_over}),
                       shards=shards, preset_name=saved.get("preset", preset_name),
                       success_only=success_only or bool(saved["data"].get("success_only")),
                       embodiment=saved.get("embodiment"), start_step=int(saved["step"]), previous=previous,
                       saved=saved)
    shards = resolve_shards(Path(data), model_over.get("image_size"), progress, convert=ranks.world == 1)
    manifest = load_manifest(shards)  # image_size: the frames were resized at conversion
    emb = data_embodiment(manifest, embodiment)
    loss_cfg = from_dict(LossConfig, {**preset(preset_name, "loss"), **loss_over})
    train_cfg = from_dict(TrainConfig, {**preset(preset_name, "train"), **train_over})
    needs = model_requirements(train_cfg.algo, loss_cfg)  # heads, tokens the algorithm trains
    model_cfg = model_config_for(manifest, {**preset(preset_name, "model"), **model_over, **needs}, emb)
    return RunPlan(model_cfg=model_cfg, loss_cfg=loss_cfg, train_cfg=train_cfg, shards=shards,
                   preset_name=preset_name, success_only=success_only,
                   embodiment=emb.to_dict() if emb is not None else None)
