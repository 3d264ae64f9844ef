"""Generate an offline dataset on the simulated arm, in the paper's style, as episode bags.

    python -m qt_policy.tools.generate --out data/bags --episodes-per-task 150 --workers 2

A minority of episodes are near-expert demonstrations and the majority come from failure-making
policies (--expert-fraction, default 0.2; labels always come from the simulator's success signal,
reward 1 at the first success). Every episode is written as a rosbag2 (MCAP) bag in the same format
the ROS recorder writes, so generated and recorded data take one path into training.
Resumable: bags already present are skipped. Seeds are 0..N-1 per task (evaluation uses 1,000,000+).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import zlib
from pathlib import Path

import numpy as np

_ARM = None


def _mode(task: str, seed: int, expert_fraction: float) -> str:
    from ..sim.collect import sample_mode

    return sample_mode(np.random.default_rng([seed, zlib.crc32(task.encode()), 7]), expert_fraction)


def _work(job):
    """Collect and write one episode in a worker process (one SimArm per process)."""
    global _ARM
    from ..data.bag_io import write_episode_bag
    from ..sim.arm import SimArm
    from ..sim.collect import collect_episode

    out, task, seed, mode, image_size = job
    if _ARM is None:
        _ARM = SimArm(image_size=image_size)
    ep = collect_episode(_ARM, task, seed, mode)
    write_episode_bag(out, ep, name=bag_name(task, seed))  # episode_id keeps the policy kind
    return task, bool(ep.success), len(ep)


def bag_name(task: str, seed: int) -> str:
    return f"{task}-{seed:06d}"


def main(argv=None) -> int:
    from ..sim.tasks import TASKS

    p = argparse.ArgumentParser(prog="qt-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder of episode bags")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--episodes-per-task", type=int, default=150)
    p.add_argument("--expert-fraction", type=float, default=0.2, help="share of near-expert episodes (default 0.2)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 1)))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from ..data.bag_io import find_partial_bags, list_episode_bags

    args.out.mkdir(parents=True, exist_ok=True)
    done = {b.name for b in list_episode_bags(args.out)}
    stale = find_partial_bags(args.out)
    if stale:
        print(f"note: {len(stale)} unfinished .partial bags from an interrupted run are ignored (safe to delete)")
    jobs = [(args.out, t, s, _mode(t, s, args.expert_fraction), args.image_size)
            for t in args.tasks for s in range(args.episodes_per_task) if bag_name(t, s) not in done]
    print(f"{len(done)} episodes present, {len(jobs)} to generate with {args.workers} workers")
    stats: dict[str, list[int]] = {}
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers) as pool:
        for task, success, _ in tqdm(pool.imap_unordered(_work, jobs), total=len(jobs), disable=args.no_progress,
                                     desc="episodes", dynamic_ncols=True):
            stats.setdefault(task, []).append(success)
    for task, s in sorted(stats.items()):
        print(f"{task:<22} {len(s):4d} new episodes, {np.mean(s):5.1%} successful")
    total = [x for s in stats.values() for x in s]
    if total:
        print(f"{'all':<22} {len(total):4d} new episodes, {np.mean(total):5.1%} successful; bags in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
