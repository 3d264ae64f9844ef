"""Train Q-Transformer (or a baseline) from episode bags or their shards into a run folder.

`fit` reads as the run goes: plan it (plan.py: configs, shards, resume), the batches (data/loader.py)
and the learner, loop, save (run_folder.py), and under torchrun join and leave the process group
(distributed.py: every rank draws its own batches, the gradients are averaged, at the end the ranks'
weights are compared).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.checkpoint import load_model, load_training_state
from ..core.config import to_dict
from ..core.learner import Learner
from ..core.model import QTransformer, count_parameters
from . import distributed
from .plan import RunPlan, plan_run, split_overrides
from ..data.loader import training_batches
from .run_folder import CHECKPOINT, ONLINE, Curves, save_weights

__all__ = ["FitResult", "fit", "split_overrides"]


@dataclass
class FitResult:
    """Where a finished training left its weights, and what it did."""

    checkpoint: Path  # the weights to act with
    online: Path  # the online weights + training state
    steps: int
    wall_time_s: float
    episodes: int
    in_sync: bool = True  # data parallel only: every rank ended with the same weights


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
    out = Path(out)
    split = split_overrides(overrides)  # an unknown setting fails before anything starts
    ranks = distributed.join(threads, device)
    device = ranks.device
    plan = plan_run(Path(data), out, preset_name, split, success_only=success_only, embodiment=embodiment,
                    resume=resume, progress=progress, ranks=ranks)
    torch.manual_seed(plan.train_cfg.seed)
    rng = np.random.default_rng([plan.train_cfg.seed, ranks.rank, plan.start_step])
    keep = _episode_filter(plan.success_only, tasks, plan.train_cfg.failure_steps)
    counts, plan = _data(plan, keep, out, log)
    batches = training_batches(plan.shards, plan.model_cfg, plan.loss_cfg, plan.train_cfg, _texts(counts), keep,
                               rank=ranks.rank, world=ranks.world, rng=rng, start_step=plan.start_step,
                               pin_memory=torch.device(device).type == "cuda")
    model, learner = _learner(plan, device, ranks)
    metadata = _metadata(plan, counts, tasks, ranks)
    prior_wall = float(plan.saved.get("wall_time_s", 0.0)) if plan.start_step else 0.0
    train_cfg = plan.train_cfg

    curves = None
    if ranks.is_main:
        curves = Curves(out, plan.start_step)
        log(f"{train_cfg.algo} ({plan.preset_name}): {count_parameters(model):,} parameters; {counts['episodes']} "
            f"episodes, {counts['steps']} steps, {counts['successes']} successes; steps {plan.start_step}->"
            f"{train_cfg.steps}; world {ranks.world}")
    t0 = time.time()
    from tqdm import tqdm
    bar = tqdm(range(plan.start_step, train_cfg.steps), initial=plan.start_step, total=train_cfg.steps,
               disable=not ranks.is_main or not progress, dynamic_ncols=True)
    try:
        for step in bar:
            batch = next(batches).to(device, non_blocking=True)
            info = learner.update(batch)
            done = step + 1
            if ranks.is_main and (done % train_cfg.log_every == 0 or done == train_cfg.steps):
                curves.add(done, prior_wall + time.time() - t0, info)
                bar.set_postfix(loss=f"{info['loss']:.4f}")
            if ranks.is_main and (done % train_cfg.save_every == 0 or done % train_cfg.checkpoint_every == 0
                                  or done == train_cfg.steps):
                save_weights(out, model, learner, train_cfg, metadata(done, prior_wall + time.time() - t0), done)
    finally:
        bar.close()
        batches.close()  # ends the loader workers, if any
        if curves is not None:
            curves.close()
    wall = prior_wall + time.time() - t0
    if ranks.is_main:
        log(f"done: {train_cfg.steps} steps in {time.time() - t0:.0f} s; act with {out / CHECKPOINT}")
    in_sync = distributed.leave(ranks, model, log)
    return FitResult(checkpoint=out / CHECKPOINT, online=out / ONLINE, steps=train_cfg.steps, wall_time_s=wall,
                     episodes=counts["episodes"], in_sync=in_sync)


def _episode_filter(success_only: bool, tasks: list[str] | None, failure_steps: str = "all") -> Callable[[dict], bool]:
    """Which episodes the run trains on (by their meta, or a manifest group's): with failure_steps
    "interventions" a failed episode only when a person drove some of its steps."""
    task_set = set(tasks) if tasks else None
    corrected = failure_steps == "interventions"
    return lambda e: ((e["success"] or (not success_only and (not corrected or e.get("operator_steps", 0) > 0)))
                      and (task_set is None or e.get("task") in task_set))


def _data(plan: RunPlan, keep, out: Path, log):
    """What the run trains on (episodes, steps, successes, instructions of the kept episodes); a resume
    must find the episodes it trained on. Data without a success draws batches uniformly (said in the
    log and the checkpoint)."""
    from ..data.shard_format import count_kept, load_manifest

    counts = count_kept(load_manifest(plan.shards), keep, plan.train_cfg.failure_steps)
    if not counts["episodes"]:
        raise ValueError(f"no episodes in {plan.shards} pass the filter (--success-only / --tasks)")
    if plan.previous is not None and counts["episodes"] != plan.saved["data"]["episodes"]:
        raise ValueError(f"{out} trained on {plan.saved['data']['episodes']} episodes of {plan.shards}, which now "
                         f"holds {counts['episodes']}: a resume continues the same run on the same data; train "
                         "the new data into another --out")
    if plan.train_cfg.success_batch_fraction and not counts["successes"]:
        # a robot's first data may hold no success yet: train on what there is, and say so (the checkpoint too)
        log(f"warning: no successful episode in the data: batches are drawn uniformly "
            f"(success_batch_fraction {plan.train_cfg.success_batch_fraction} -> 0)")
        plan = dataclasses.replace(plan, train_cfg=dataclasses.replace(plan.train_cfg, success_batch_fraction=0.0))
    return counts, plan


def _texts(counts: dict) -> dict:
    """The instructions' embeddings, computed once here (loader workers get them, not the encoder)."""
    from ..core.text import shared_encoder

    encoder = shared_encoder()
    return {text: encoder(text) for text in counts["instructions"]}


def _learner(plan: RunPlan, device: str, ranks: distributed.Ranks):
    """The network (fresh, or the resumed run's online weights) and its learner with its state."""
    model = QTransformer(plan.model_cfg)  # built even on a resume: it draws the same random numbers
    learner_state = None
    if plan.start_step:
        model = load_model(plan.previous)
        learner_state = load_training_state(plan.previous)
    model.to(device)
    learner = Learner(model, plan.loss_cfg, plan.train_cfg, wrap=distributed.wrapper(ranks))
    if learner_state:
        learner.load_state_dict(learner_state["learner"])
    if ranks.rank or plan.start_step:  # other image shifts per rank, and new ones after a resume (as for rng)
        seed = np.random.default_rng([plan.train_cfg.seed, ranks.rank, plan.start_step, 1]).integers(2**62)
        learner.augment_generator.manual_seed(int(seed))
    return model, learner


def _metadata(plan: RunPlan, counts: dict, tasks, ranks: distributed.Ranks) -> Callable[[int, float], dict]:
    """(step, wall time) -> what a checkpoint of the run says about it."""
    return lambda step, wall: {
            "loss": to_dict(plan.loss_cfg), "train": to_dict(plan.train_cfg), "preset": plan.preset_name,
            "step": step, "wall_time_s": wall,
            "data": {"shards": str(plan.shards), "episodes": counts["episodes"], "steps": counts["steps"],
                     "successes": counts["successes"], "success_only": bool(plan.success_only),
                     "tasks": sorted(set(tasks)) if tasks else None},
            "instructions": counts["instructions"], "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu",
            "world_size": ranks.world, **({"embodiment": plan.embodiment} if plan.embodiment else {})}
