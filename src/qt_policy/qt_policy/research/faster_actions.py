"""Does a checkpoint value acting faster than its demonstrations? On issue 37's slow demonstrations.

    python -m qt_policy.research.faster_actions --data data/beyond_demos runs/beyond_demos/qt_s0/checkpoint ...

The benchmark's demonstrator is the scripted expert with every arm dimension scaled by 0.4 (and pauses).
At every moving step of the demonstrations (not the pauses) this compares, per checkpoint:
  - Q(s, demonstrated action) with Q(s, the same action at the expert's speed: arm dimensions / 0.4,
    clipped to the action range), each the last dimension's Q with the full action as the prefix;
  - the greedy action's arm speed over the demonstrated one's (1 = as slow as the demonstrator, 2.5 = the
    expert's speed).
A Q-function that can beat its demonstrations must rank the faster action higher where the data show
it pays (the interrupted expert's fast pieces). For a BC checkpoint "Q" is its per-bin probability; only
the speed ratio compares across methods.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .results_file import write_json

SLOW_SCALE = 0.4  # sim/scripted.py SlowExpert: arm dimensions scaled by 0.4
ARM_DIMS = slice(0, 3)  # the Sawyer's xyz; the gripper (last) is not scaled


def demonstration_ids(data: Path) -> set[tuple[str, int]]:
    """(task, placement seed) of every demonstration, from the generation settings (qt-generate's plan)."""
    from ..sim.episode_plan import episode_plan

    settings = json.loads((data / "generation.json").read_text())
    tasks = sorted({p.name.rsplit("-", 2)[0] for p in data.iterdir() if p.is_dir() and p.name[0] != "_"})
    per_task = {t: len([p for p in data.iterdir() if p.name.startswith(t + "-") and p.name[len(t) + 1:][:1].isdigit()])
                for t in tasks}
    return {(t, seed) for t in tasks for seed, _, mode in
            episode_plan(t, per_task[t], settings["expert_fraction"], settings["attempts_per_placement"])
            if mode == "expert"}


def demonstration_episodes(data: Path, model_cfg, loss_cfg=None):
    """(a sampler holding the successful episodes of `data`, the indices of the demonstrations among them)."""
    from ..core.config import LossConfig
    from ..core.text import shared_encoder
    from ..data.dataset import TransitionSampler
    from ..training import resolve_shards

    sampler = TransitionSampler(resolve_shards(data, None, progress=False), model_cfg, loss_cfg or LossConfig(),
                                shared_encoder(), episode_filter=lambda meta: bool(meta["success"]))
    demos = demonstration_ids(data)
    return sampler, [i for i, ep in enumerate(sampler.episodes)
                     if (ep.meta["task"], int(ep.meta["id"].rsplit("-", 2)[1])) in demos]


@torch.no_grad()
def compare(model, batch_obs, demo_actions: np.ndarray, disc, chunk: int = 128) -> dict:
    """Per step: Q of the demonstrated and of the faster action, and the greedy action's speed ratio."""
    from ..core.decoding import decode_from_context

    fast = demo_actions.copy()
    fast[:, ARM_DIMS] = np.clip(fast[:, ARM_DIMS] / SLOW_SCALE, np.asarray(disc.low)[ARM_DIMS], np.asarray(disc.high)[ARM_DIMS])
    demo_bins, fast_bins = torch.from_numpy(disc.to_bins(demo_actions)), torch.from_numpy(disc.to_bins(fast))
    q_demo, q_fast, speed = [], [], []
    for i in range(0, len(demo_actions), chunk):
        part = slice(i, i + chunk)
        obs = {k: None if v is None else v[part] for k, v in batch_obs.items()}
        context = model.encode_context(obs["images"], obs["text"], obs["state"])
        for bins, out in ((demo_bins[part], q_demo), (fast_bins[part], q_fast)):
            out.append(model.q_values(context, bins)[:, -1].gather(-1, bins[:, -1:])[:, 0])
        greedy = disc.to_values(decode_from_context(model, context).bins).numpy()
        speed.append(np.linalg.norm(greedy[:, ARM_DIMS], axis=1) / np.linalg.norm(demo_actions[part, ARM_DIMS], axis=1))
    q_demo, q_fast, speed = torch.cat(q_demo).numpy(), torch.cat(q_fast).numpy(), np.concatenate(speed)
    return {"steps": int(len(q_demo)), "q_demonstrated": float(q_demo.mean()), "q_faster": float(q_fast.mean()),
            "faster_ranked_higher": float(np.mean(q_fast > q_demo)), "mean_gap_faster_minus_demonstrated":
            float(np.mean(q_fast - q_demo)), "greedy_speed_over_demonstrated_median": float(np.median(speed)),
            "greedy_faster_than_demonstrated": float(np.mean(speed > 1.25))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="faster_actions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints to compare (the same image size)")
    p.add_argument("--data", type=Path, required=True, help="issue 37's bags (with generation.json)")
    p.add_argument("--max-steps", type=int, default=2000, help="demonstration steps used at most (evenly spaced)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = p.parse_args(argv)
    from ..core.checkpoint import load_model
    from ..core.discretizer import make_discretizer

    torch.set_num_threads(args.threads)
    models = {str(c): load_model(c).eval() for c in args.checkpoints}
    first = next(iter(models.values()))
    sampler, chosen = demonstration_episodes(args.data, first.cfg)
    ep_ids, steps = [], []
    for i in chosen:
        moving = np.flatnonzero(np.linalg.norm(sampler.episodes[i].arrays["actions"][:, ARM_DIMS], axis=1) > 1e-3)
        ep_ids += [i] * len(moving)
        steps += moving.tolist()
    keep = np.linspace(0, len(steps) - 1, min(args.max_steps, len(steps))).astype(int)
    ep_ids, steps = np.asarray(ep_ids)[keep], np.asarray(steps)[keep]
    obs = sampler.observation(ep_ids, steps)
    actions = np.stack([sampler.episodes[i].arrays["actions"][t] for i, t in zip(ep_ids, steps)]).astype(np.float64)
    disc = make_discretizer(first.cfg.action_low, first.cfg.action_high, first.cfg.num_bins)
    report = {"data": str(args.data), "demonstrations": len({int(i) for i in ep_ids}), "checkpoints": {}}
    print(f"{report['demonstrations']} demonstrations, {len(steps)} moving steps", flush=True)
    for name, model in models.items():
        report["checkpoints"][name] = r = compare(model, {"images": obs.images, "text": obs.text, "state": obs.state},
                                                  actions, disc)
        print(f"{name}: Q demonstrated {r['q_demonstrated']:.3f}, faster {r['q_faster']:.3f} (higher in "
              f"{r['faster_ranked_higher']:.0%} of {r['steps']} steps); greedy speed / demonstrated, median "
              f"{r['greedy_speed_over_demonstrated_median']:.2f}", flush=True)
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
