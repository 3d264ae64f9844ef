"""Closed-loop evaluation on the simulated arm: success rate per task with a 95% Wilson interval.

    python -m qt_policy.tools.evaluate --checkpoint runs/qt/checkpoint --episodes 50 --out results/qt.json
    python -m qt_policy.tools.evaluate --checkpoint models/qt_metaworld --tasks drawer-open --episodes 2 \
        --video results/videos --q-plot results/q
    python -m qt_policy.tools.evaluate --checkpoint runs/a/checkpoint runs/b/checkpoint   # ensemble: mean Q

Evaluation seeds start at --seed-start (default 1,000,000), far from the dataset generator's seeds
(0..), so no placement seen in training is evaluated. Episodes of a task run in lockstep and the
policy decodes them as one batch (greedy, no exploration).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

EVAL_SEED_START = 1_000_000


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class BatchPolicy:
    """Greedy Q-Transformer policy for a batch of arms: frame history, instruction, state, decode."""

    def __init__(self, model, embed):
        self.model, self.embed, self.cfg = model, embed, model.cfg

    def reset(self, batch: int, instruction: str):
        from ..data.observation import FrameHistory

        self.text = torch.from_numpy(np.repeat(self.embed(instruction)[None], batch, axis=0))
        self.history = [FrameHistory(self.cfg.frames) for _ in range(batch)]

    @torch.no_grad()
    def act(self, observations, active: list[int]):
        from ..core.decoding import greedy_decode
        from ..data.observation import prepare_frame

        cfg = self.cfg
        frames, states = [], []
        for i in active:
            if cfg.image_size:  # the one observation pipeline (the node and the training cache use it too)
                frames.append(self.history[i].push(prepare_frame(observations[i].image, cfg.image_size,
                                                                 cfg.image_crop)))
            states.append(observations[i].state)
        images = torch.from_numpy(np.stack(frames)) if cfg.image_size else None
        state = torch.from_numpy(np.stack(states)) if cfg.state_dim else None
        return greedy_decode(self.model, images, self.text[active], state)


def run_task(arms, policy: BatchPolicy, task, seeds: list[int], record_first: bool = False, on_step=None,
             command_lag: float = 0.0):
    """Run len(seeds) episodes in lockstep; returns successes, lengths, Q traces and frames of episode 0.

    on_step(i, observation), if given, sees episode i's observation before each of its actions
    (probes use it to trace the scene without a rollout loop of their own).
    command_lag (0..1): model a velocity interface with decision latency, as the sim arm driven by
    TwistStamped is: each step executes (1 - lag) x the new dx, dy, dz + lag x the previous step's
    (the previous command stays in force until the new one arrives, lag = latency / control period;
    robot/command_window.py); the gripper, a position command, is the new one. 0 = the decoded action.
    """
    n = len(seeds)
    obs = [arm.reset(task.name, s) for arm, s in zip(arms, seeds)]
    policy.reset(n, task.instruction)
    done = [False] * n
    success = [False] * n
    lengths = [task.max_steps] * n
    q_trace: list[list[float]] = [[] for _ in range(n)]
    frames = [obs[0].image] if record_first else []
    previous = [np.zeros(3, np.float32) for _ in range(n)]
    for t in range(task.max_steps):
        active = [i for i in range(n) if not done[i]]
        if not active:
            break
        out = policy.act(obs, active)
        for k, i in enumerate(active):
            q_trace[i].append(float(out.q_value[k]))
            if on_step is not None:
                on_step(i, obs[i])
            action = out.values[k].numpy().copy()
            if command_lag:
                new = action[:3].copy()
                action[:3] = (1.0 - command_lag) * new + command_lag * previous[i] if t else (1.0 - command_lag) * new
                previous[i] = new
            obs[i], ok = arms[i].step(action)
            if i == 0 and record_first:
                frames.append(obs[i].image)
            if ok:
                done[i], success[i], lengths[i] = True, True, t + 1
    return success, lengths, q_trace, frames


def plot_q(q_trace: list[float], success: bool, title: str, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.8))
    ax.plot(q_trace, color="tab:green" if success else "tab:red")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("greedy Q (est. success)")
    ax.set_title(f"{title} ({'success' if success else 'failure'})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(checkpoint: Path | list[Path], tasks: list[str], episodes: int, seed_start: int, batch: int,
             video_dir: Path | None = None, q_dir: Path | None = None, progress: bool = True,
             command_lag: float = 0.0) -> dict:
    from tqdm import tqdm

    from ..core.checkpoint import load_policy_model
    from ..core.text import shared_encoder
    from ..sim.arm import SimArm
    from ..sim.tasks import get_task

    checkpoints = checkpoint if isinstance(checkpoint, list) else [checkpoint]
    model = load_policy_model(checkpoints)
    policy = BatchPolicy(model, shared_encoder())
    arms = [SimArm(image_size=model.cfg.image_size or 64) for _ in range(batch)]
    results = {"checkpoint": ",".join(map(str, checkpoints)), "episodes_per_task": episodes, "seed_start": seed_start,
               "path": "harness" + (f" (command lag {command_lag:g})" if command_lag else ""), "tasks": {}}
    t0 = time.time()
    bar = tqdm(total=episodes * len(tasks), disable=not progress, desc="episodes", dynamic_ncols=True)
    try:
        for name in tasks:
            task = get_task(name)
            succ, lens = [], []
            for start in range(0, episodes, batch):
                seeds = [seed_start + k for k in range(start, min(start + batch, episodes))]
                first = start == 0
                s, lengths, q_trace, frames = run_task(arms[:len(seeds)], policy, task, seeds,
                                                       record_first=first and video_dir is not None,
                                                       command_lag=command_lag)
                succ += s
                lens += lengths
                if first and q_dir is not None:
                    q_dir.mkdir(parents=True, exist_ok=True)
                    plot_q(q_trace[0], s[0], f"{task.instruction} seed {seeds[0]}", q_dir / f"{name}.png")
                if first and video_dir is not None:
                    import imageio.v2 as imageio
                    video_dir.mkdir(parents=True, exist_ok=True)
                    imageio.mimsave(video_dir / f"{name}.gif", frames, duration=0.1)
                bar.update(len(seeds))
            results["tasks"][name] = {"instruction": task.instruction, "successes": int(sum(succ)),
                                      "episodes": len(succ), "mean_length": float(np.mean(lens)),
                                      "seeds": [seed_start + k for k in range(episodes)],
                                      "per_episode": [bool(x) for x in succ]}
    finally:
        bar.close()
        for arm in arms:
            arm.close()
    results = summarize(results)
    results["wall_time_s"] = time.time() - t0
    return results


def summarize(results: dict) -> dict:
    """Per-task and overall success with 95% Wilson intervals, from per-episode successes/lengths."""
    for r in results["tasks"].values():
        k, n = r["successes"], r["episodes"]
        lo, hi = wilson_interval(k, n)
        r.update(success_rate=k / n if n else 0.0, ci95=[lo, hi])
    total = sum(r["successes"] for r in results["tasks"].values())
    n = sum(r["episodes"] for r in results["tasks"].values())
    lo, hi = wilson_interval(total, n)
    results["mean_success"] = float(np.mean([r["success_rate"] for r in results["tasks"].values()]))
    results["overall"] = {"successes": total, "episodes": n, "ci95": [lo, hi]}
    return results


def evaluate_through_ros(checkpoint: Path, tasks: list[str], episodes: int, seed_start: int, out_dir: Path,
                         episode_timeout_s: float = 30.0, verbose: bool = False, commands: bool = False) -> dict:
    """The same evaluation through the ROS graph: the sim arm, the policy and the recorder as separate
    processes from launch/sim_demo.launch.xml (the product path), the k-th episode of each task on
    placement seed_start + k as in `evaluate`. Success is the recorder's EpisodeResult."""
    import argparse as _argparse

    from ..sim.tasks import get_task
    from .demo import find_checkpoint, run_in_ros_graph

    resolved = find_checkpoint(str(checkpoint))
    if resolved is None:
        raise FileNotFoundError(f"no model at {checkpoint}")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "nodes.log"
    args = _argparse.Namespace(seed=seed_start, episode_timeout_s=episode_timeout_s, episodes_per_task=episodes,
                               verbose=verbose, commands=commands)
    t0 = time.time()
    rows, error = run_in_ros_graph(args, [get_task(n) for n in tasks], resolved, out_dir / "bags", log_path)
    if error:
        raise RuntimeError(f"through-ROS evaluation stopped: {error}")
    results = {"checkpoint": str(checkpoint), "episodes_per_task": episodes, "seed_start": seed_start,
               "path": "ros (TwistStamped + gripper)" if commands else "ros", "tasks": {}}
    for name in tasks:
        mine = [r for r in rows if r["task"] == name]
        results["tasks"][name] = {"instruction": get_task(name).instruction, "successes": sum(r["success"] for r in mine),
                                  "episodes": len(mine), "mean_length": float(np.mean([r["steps"] for r in mine])),
                                  "seeds": [seed_start + k for k in range(len(mine))],
                                  "per_episode": [bool(r["success"]) for r in mine]}
    results = summarize(results)
    results["wall_time_s"] = time.time() - t0
    return results


def main(argv=None) -> int:
    from ..sim.tasks import TASKS

    p = argparse.ArgumentParser(prog="qt-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, nargs="+",
                   help="checkpoint directory; several = an ensemble acting on their mean Q")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--episodes", type=int, default=50, help="episodes per task (default 50)")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    p.add_argument("--batch", type=int, default=10, help="episodes run in lockstep and decoded as one batch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, help="write results as JSON here")
    p.add_argument("--video", type=Path, help="save a GIF of the first episode of each task in this folder")
    p.add_argument("--q-plot", type=Path, help="save a plot of the greedy Q over the first episode of each task here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--through-ros", action="store_true",
                   help="run the episodes through the ROS graph instead: sim arm, policy node and recorder as "
                        "separate processes (launch/sim_demo.launch.xml), in real time at the control rate")
    p.add_argument("--ros-out", type=Path, default=Path("data/eval_ros"),
                   help="with --through-ros: folder for the episode bags and the nodes' log (default data/eval_ros)")
    p.add_argument("--command-lag", type=float, default=0.0,
                   help="harness only: execute (1 - LAG) x the new dx, dy, dz + LAG x the previous step's, as a velocity "
                        "interface with decision latency LAG x period does (default 0: the decoded action)")
    p.add_argument("--commands", action="store_true",
                   help="with --through-ros: the policy drives the sim arm through TwistStamped + gripper commands "
                        "(a real arm's interface, config/embodiments/metaworld_sawyer.yaml) instead of QAction")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.through_ros:
        if len(args.checkpoint) != 1 or args.video or args.q_plot:
            p.error("--through-ros takes one checkpoint and no --video/--q-plot")
        res = evaluate_through_ros(args.checkpoint[0], args.tasks, args.episodes, args.seed_start, args.ros_out,
                                   commands=args.commands)
    else:
        res = evaluate(args.checkpoint, args.tasks, args.episodes, args.seed_start, args.batch, args.video,
                       args.q_plot, progress=not args.no_progress, command_lag=args.command_lag)
    for name, r in res["tasks"].items():
        print(f"{name:<22} {r['success_rate']:6.1%}  [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
              f"({r['successes']}/{r['episodes']}, mean length {r['mean_length']:.0f})")
    print(f"{'mean':<22} {res['mean_success']:6.1%}  overall CI [{res['overall']['ci95'][0]:.2f}, {res['overall']['ci95'][1]:.2f}]"
          f"  ({res['wall_time_s']:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
