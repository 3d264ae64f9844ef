"""Does a checkpoint's greedy choice agree with the data? Teacher-forced, split by episode outcome.

    qt-diagnose --data data/bags results/baselines/qt/checkpoint results/baselines/bc_all/checkpoint

Samples --samples transitions from the training shards (the same sampler as training) and prints,
per action dimension, how far the greedy bin lies from the dataset bin on successful and on failed
episodes, and the Q of both (see `core.diagnostics`). For a BC checkpoint "Q" is the sigmoid of its
logits, so only the distances compare across methods. Then the start values of every episode
(greedy Q at its first step, mean over successful and over failed episodes; `core.diagnostics`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-diagnose", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--data", type=Path, required=True, help="folder of episode bags, or a shard folder (qt-convert)")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    from ..core.batch import Observation
    from ..core.checkpoint import load_model
    from ..core.config import LossConfig
    from ..core.diagnostics import start_values, teacher_forced_agreement
    from ..core.text import shared_encoder
    from ..data.dataset import TransitionSampler
    from ..data.shard_format import is_shard_folder, load_manifest, shards_dir_for
    from ..training import model_config_for, resolve_shards

    torch.set_num_threads(args.threads)
    models = {str(c): load_model(c).eval() for c in args.checkpoints}
    first = next(iter(models.values()))
    for what in ("num_bins", "image_size"):  # one batch serves every checkpoint: they must agree on both
        values = sorted({getattr(m.cfg, what) for m in models.values()})
        if len(values) > 1:
            print(f"the checkpoints differ in {what} {values}: give each its own run", file=sys.stderr)
            return 2
    size = first.cfg.image_size
    side = lambda c: model_config_for(load_manifest(c), {}).image_size  # noqa: E731
    # a model trained with --image-size N reads the resized shards training made (no full-size conversion first)
    resized_exists = not is_shard_folder(args.data) and is_shard_folder(shards_dir_for(args.data, size))
    shards = resolve_shards(args.data, size if resized_exists else None, progress=False)
    if side(shards) != size:
        shards = resolve_shards(args.data, size, progress=False)
        if side(shards) != size:
            print(f"{shards} holds {side(shards)}-pixel images, the model takes {size}", file=sys.stderr)
            return 2
    sampler = TransitionSampler(shards, first.cfg, LossConfig(), shared_encoder())
    batch = sampler.sample(args.samples, np.random.default_rng(args.seed))
    successful = batch.mc_return > 0  # rewards are 1 at the first success only: MC > 0 iff the episode succeeded
    episodes = np.arange(len(sampler.episodes))
    starts = sampler.observation(episodes, np.zeros_like(episodes))
    first_bins = torch.from_numpy(np.stack([ep.bins[0] for ep in sampler.episodes]))
    episode_success = torch.tensor([ep.success for ep in sampler.episodes])
    episode_task = [ep.meta.get("task") or ep.meta["instruction"] for ep in sampler.episodes]
    select = lambda obs, keep: Observation(**{f: None if getattr(obs, f) is None else getattr(obs, f)[keep]  # noqa: E731
                                              for f in ("text", "images", "state")})
    fmt = lambda xs: " ".join(f"{x:5.2f}" for x in xs)  # noqa: E731
    report = {}
    for name, model in models.items():
        report[name] = {"successful": teacher_forced_agreement(model, batch, successful),
                        "failed": teacher_forced_agreement(model, batch, ~successful)}
        print(name)
        for outcome, r in report[name].items():
            print(f"  {outcome:10s} n={r['samples']:4d}  median |greedy-data| bins {fmt(r['median_bin_distance'])}"
                  f"  within 1 bin {fmt(r['within_one_bin'])}  Q data {fmt(r['q_dataset_bin'])}  Q greedy {fmt(r['q_greedy_bin'])}")
        report[name]["start_values"] = {"all": start_values(model, starts, first_bins, episode_success)}
        for task in sorted(set(episode_task)):
            of_task = torch.tensor([t == task for t in episode_task])
            report[name]["start_values"][task] = start_values(model, select(starts, of_task), first_bins[of_task],
                                                              episode_success[of_task])
        print("  at step 0, successful / failed episodes: greedy Q; Q of the action taken")
        for task, sv in report[name]["start_values"].items():
            print(f"    {task:22s} {sv['successful']:.3f} / {sv['failed']:.3f};  {sv['first_action_successful']:.3f} / "
                  f"{sv['first_action_failed']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
