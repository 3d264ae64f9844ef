"""Train Q-Transformer (or behaviour cloning) from episode bags or a training cache into a run folder.

The run folder:
  checkpoint/         the weights to act with (TrainConfig.act_with: the Polyak average by default)
  checkpoint_online/  the online weights and the training state; a resume continues from here
  step_N/             the weights to act with at step N (every checkpoint_every steps)
  metrics.jsonl, tb/  one row per log_every steps (tensorboard logs in tb/)

Data parallel under torchrun (WORLD_SIZE > 1, gloo on CPU): every rank draws its own batches and the
gradients are averaged; at the end the ranks' weights are compared.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..core.checkpoint import (TRAINING_STATE, load_model, load_training_state, read_config,
                               save_checkpoint)
from ..core.algorithms import model_requirements
from ..core.config import (LossConfig, ModelConfig, TrainConfig, from_dict, preset, to_dict, upgrade_loss_dict,
                           upgrade_train_dict)
from ..core.learner import Learner
from ..core.model import QTransformer, count_parameters
from .data_shape import data_embodiment, model_config_for, resolve_cache

CHECKPOINT = "checkpoint"
ONLINE = "checkpoint_online"


@dataclass
class FitResult:
    """Where a finished training left its weights, and what it did."""

    checkpoint: Path  # the weights to act with
    online: Path  # the online weights + training state
    steps: int
    wall_time_s: float
    episodes: int
    in_sync: bool = True  # data parallel only: every rank ended with the same weights


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


def resume_dir(out: Path) -> Path | None:
    """The folder a resume reads: checkpoint_online/, or checkpoint/ of a run made before that layout."""
    for name in (ONLINE, CHECKPOINT):
        if (out / name / TRAINING_STATE).is_file():
            return out / name
    return None


def _check_same_data(data: Path, saved_cache: Path) -> None:
    """A resume reads the run's own cache: refuse `data` that is another folder (it would be ignored)."""
    saved_cache = saved_cache.resolve()
    if data.resolve() not in (saved_cache, saved_cache.parent):
        raise ValueError(f"--data {data} is not the data this run trained on ({saved_cache}, the cache of "
                         f"{saved_cache.parent}); resume with that data, or train into another --out")


def fit(data: Path, out: Path, *, preset_name: str = "recommended", success_only: bool = False,
        tasks: list[str] | None = None, embodiment: Path | None = None,
        resume: bool = False, device: str = "cpu", threads: int | None = None, progress: bool = True,
        log: Callable[[str], None] = lambda s: print(s, flush=True), **overrides) -> FitResult:
    """Train into `out`; returns where the weights are.

    `overrides` are config fields by name (num_bins=256, value_loss="mse", steps=500, ...) on top of
    `preset_name` (core.config.PRESETS) on top of the defaults; the model's shape comes from the data
    (image_size=N resizes the frames: the bags' cache is converted at N pixels).
    With resume=True a run that has a checkpoint continues from it (its configs, with the train
    overrides applied: e.g. more steps); a finished run is returned as it is.
    """
    from ..core.text import shared_encoder
    from ..data.cache import load_index
    from ..data.dataset import TransitionSampler

    out = Path(out)
    model_over, loss_over, train_over = split_overrides(overrides)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dist = None
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // world))
    is_main = rank == 0

    previous = resume_dir(out) if resume else None
    if previous is not None:
        saved = read_config(previous)
        model_cfg = from_dict(ModelConfig, saved["model"])
        embodiment_dict = saved.get("embodiment")
        loss_cfg = from_dict(LossConfig, upgrade_loss_dict(saved["loss"], model_cfg.num_bins))
        train_cfg = from_dict(TrainConfig, {**upgrade_train_dict(saved["train"]), **train_over})
        cache = Path(saved["data"]["cache"])
        _check_same_data(Path(data), cache)
        start_step = int(saved["step"])
        success_only = success_only or bool(saved["data"].get("success_only"))
        preset_name = saved.get("preset", preset_name)
    else:
        cache = resolve_cache(Path(data), model_over.get("image_size"), progress) if is_main else None  # image_size: resized
        if dist is not None:
            holder = [str(cache) if cache else None]
            dist.broadcast_object_list(holder, src=0)
            cache = Path(holder[0])
        index = load_index(cache)
        emb = data_embodiment(index, embodiment)
        embodiment_dict = emb.to_dict() if emb is not None else None
        loss_cfg = from_dict(LossConfig, {**preset(preset_name, "loss"), **loss_over})
        train_cfg = from_dict(TrainConfig, {**preset(preset_name, "train"), **train_over})
        needs = model_requirements(train_cfg.algo, loss_cfg)  # heads, tokens the algorithm trains
        model_cfg = model_config_for(index, {**preset(preset_name, "model"), **model_over, **needs}, emb)
        start_step = 0

    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng([train_cfg.seed, rank, start_step])
    task_set = set(tasks) if tasks else None

    def keep(entry):
        return (not success_only or entry["success"]) and (task_set is None or entry.get("task") in task_set)

    encoder = shared_encoder()
    sampler = TransitionSampler(cache, model_cfg, loss_cfg, encoder, episode_filter=keep)
    if previous is not None and len(sampler.episodes) != saved["data"]["episodes"]:
        raise ValueError(f"{out} trained on {saved['data']['episodes']} episodes of {cache}, which now holds "
                         f"{len(sampler.episodes)}: a resume continues the same run on the same data; train the "
                         "new data into another --out")
    if train_cfg.success_batch_fraction and not sampler.num_successes:
        # a robot's first data may hold no success yet: train on what there is, and say so (the checkpoint too)
        log(f"warning: no successful episode in the data: batches are drawn uniformly "
            f"(success_batch_fraction {train_cfg.success_batch_fraction} -> 0)")
        train_cfg = dataclasses.replace(train_cfg, success_batch_fraction=0.0)
    model = QTransformer(model_cfg)
    learner_state = None
    if start_step:
        model = load_model(previous)
        learner_state = load_training_state(previous)
    model.to(device)
    wrap = None
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel as DDP
        wrap = lambda m: DDP(m)  # noqa: E731
    learner = Learner(model, loss_cfg, train_cfg, wrap=wrap)
    if learner_state:
        learner.load_state_dict(learner_state["learner"])
    if rank or start_step:  # other image shifts per rank, and new ones after a resume (as for rng)
        learner.augment_generator.manual_seed(int(np.random.default_rng([train_cfg.seed, rank, start_step, 1]).integers(2**62)))

    instructions = sorted({e["instruction"] for e in load_index(cache)["episodes"] if keep(e)})
    prior_wall = float(read_config(previous).get("wall_time_s", 0.0)) if start_step else 0.0

    def metadata(step: int, wall: float) -> dict:
        return {"loss": to_dict(loss_cfg), "train": to_dict(train_cfg), "preset": preset_name, "step": step,
                "wall_time_s": wall,
                "data": {"cache": str(cache), "episodes": len(sampler.episodes), "steps": sampler.num_steps,
                         "successes": sampler.num_successes, "success_only": bool(success_only),
                         "tasks": sorted(task_set) if task_set else None},
                "instructions": instructions, "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
                "world_size": world, **({"embodiment": embodiment_dict} if embodiment_dict else {})}

    def save(done: int, wall: float) -> None:
        meta = metadata(done, wall)
        averaged = {**meta, "weights": f"Polyak average of the online weights, tau {train_cfg.target_tau}"}
        save_checkpoint(out / ONLINE, model, {**meta, "weights": "online"}, {"learner": learner.state_dict()})
        acting, acting_meta = (learner.target, averaged) if train_cfg.act_with == "averaged" else (model, {**meta, "weights": "online"})
        save_checkpoint(out / CHECKPOINT, acting, acting_meta)
        if done % train_cfg.checkpoint_every == 0:
            save_checkpoint(out / f"step_{done:07d}", acting, acting_meta)

    writer = metrics_file = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tb"))
        metrics_file = open(out / "metrics.jsonl", "a")
        log(f"{train_cfg.algo} ({preset_name}): {count_parameters(model):,} parameters; {len(sampler.episodes)} episodes, "
            f"{sampler.num_steps} steps, {sampler.num_successes} successes; steps {start_step}->{train_cfg.steps}; "
            f"world {world}")
    t0 = time.time()
    from tqdm import tqdm
    bar = tqdm(range(start_step, train_cfg.steps), initial=start_step, total=train_cfg.steps,
               disable=not is_main or not progress, dynamic_ncols=True)
    try:
        for step in bar:
            batch = sampler.sample(train_cfg.batch_size, rng, train_cfg.success_batch_fraction).to(device)
            info = learner.update(batch)
            done = step + 1
            if is_main and (done % train_cfg.log_every == 0 or done == train_cfg.steps):
                for k, v in info.items():
                    writer.add_scalar(f"train/{k}", v, done)
                metrics_file.write(json.dumps({"step": done, "wall_time_s": prior_wall + time.time() - t0, **info}) + "\n")
                metrics_file.flush()
                bar.set_postfix(loss=f"{info['loss']:.4f}")
            if is_main and (done % train_cfg.checkpoint_every == 0 or done == train_cfg.steps):
                save(done, prior_wall + time.time() - t0)
    finally:
        bar.close()
        if is_main:
            writer.close()
            metrics_file.close()
    wall = prior_wall + time.time() - t0
    if is_main:
        log(f"done: {train_cfg.steps} steps in {time.time() - t0:.0f} s; act with {out / CHECKPOINT}")
    in_sync = True
    if dist is not None:  # every rank saw other batches: identical weights prove the gradients were averaged
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        mismatch = torch.tensor([float(not torch.equal(flat, ref))])
        dist.all_reduce(mismatch)
        in_sync = mismatch.item() == 0
        if is_main:
            log("ranks in sync" if in_sync else "RANKS OUT OF SYNC")
        dist.destroy_process_group()
    return FitResult(checkpoint=out / CHECKPOINT, online=out / ONLINE, steps=train_cfg.steps, wall_time_s=wall,
                     episodes=len(sampler.episodes), in_sync=in_sync)
