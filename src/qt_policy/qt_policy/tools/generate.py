"""Generate an offline dataset on the simulated arm, in the paper's style, as episode bags.

    qt-generate --out data/bags --episodes-per-task 150 --workers 2

A minority of episodes are near-expert demonstrations and the majority come from failure-making
policies (--expert-fraction, default 0.2; labels always come from the simulator's success signal,
reward 1 at the first success). Every episode is written as a rosbag2 (MCAP) bag in the same format
the ROS recorder writes, so generated and recorded data take one path into training.
Resumable: bags already present are skipped. Seeds are 0..N-1 per task (evaluation uses 1,000,000+).

--attempts-per-placement K > 1 makes K episodes at each object placement (seeds 0..N/K-1), of
which round(K x expert fraction) are expert attempts and the rest failure makers: successes and
failures then share their start states, as when a robot retries one set-up. With one episode per
placement a Q-function can explain every return by the placement alone (docs/experiments/mixed-data.md).
The settings are kept in OUT/generation.json; resuming with other settings is refused.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np

from ..sim.episode_plan import episode_plan

_ARMS: dict = {}  # suite -> this worker process's arm


def _work(job):
    """Collect and write one episode in a worker process (one arm per simulator and process)."""
    from ..data.bag_writer import write_episode_bag
    from ..sim.arms import make_arm
    from ..sim.collect import collect_episode
    from ..sim.tasks import get_task

    out, task, seed, attempt, mode, image_size, demo_kind, failure_kind, max_steps = job
    suite = get_task(task).suite
    if suite not in _ARMS:
        _ARMS[suite] = make_arm(suite, image_size)
    # the kind for the mode when one is asked for; else drawn as every dataset so far drew it
    kind = (demo_kind if demo_kind != "expert" else None) if mode == "expert" else failure_kind
    ep = collect_episode(_ARMS[suite], task, seed, mode, attempt=attempt, policy_kind=kind, max_steps=max_steps)
    write_episode_bag(out, ep, name=bag_name(task, seed, attempt))  # episode_id keeps the policy kind
    return task, bool(ep.success), len(ep)


def bag_name(task: str, seed: int, attempt: int | None = None) -> str:
    """f"{task}-{seed:06d}" with one episode per placement, else f"{task}-{seed:06d}-a{attempt}"."""
    return f"{task}-{seed:06d}" if attempt is None else f"{task}-{seed:06d}-a{attempt}"


def check_settings(out: Path, settings: dict, has_bags: bool) -> None:
    """Refuse to add episodes made with other settings to a folder (bag names would mean other
    episodes). Bags without a record predate it: they have one attempt per placement."""
    record = out / "generation.json"
    if record.is_file():
        old = json.loads(record.read_text())
        if old != settings:
            raise SystemExit(f"{out} was generated with {old}; this run asks for {settings}. Use another --out.")
    elif has_bags and settings["attempts_per_placement"] != 1:
        raise SystemExit(f"{out} holds bags with one attempt per placement (made before generation.json); "
                         f"this run asks for {settings['attempts_per_placement']}. Use another --out.")
    record.write_text(json.dumps(settings, indent=1) + "\n")


def main(argv=None) -> int:
    from ..sim.scripted import DEMO_KINDS, POLICY_KINDS
    from ..sim.tasks import TASKS, all_tasks

    p = argparse.ArgumentParser(prog="qt-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder of episode bags")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(all_tasks()),
                   help="sim tasks (default: the Meta-World ones; lift, door, stack run on the robosuite Panda)")
    p.add_argument("--episodes-per-task", type=int, default=150)
    p.add_argument("--expert-fraction", type=float, default=0.2, help="share of near-expert episodes (default 0.2)")
    p.add_argument("--attempts-per-placement", type=int, default=1,
                   help="episodes per object placement; > 1 puts successes and failures at the same start states (default 1)")
    p.add_argument("--demo-kind", default="expert", choices=list(DEMO_KINDS),
                   help="who demonstrates: the fast scripted expert, or slow_expert (slower, hesitating, as a person "
                        "teleoperating: issue 37's benchmark) (default expert)")
    p.add_argument("--failure-kind", default=None, choices=[k for k in POLICY_KINDS if k not in DEMO_KINDS],
                   help="one failure maker for every non-expert episode (interrupted_expert: issue 37's benchmark); "
                        "default: drawn per episode from sim/scripted.py's weights")
    p.add_argument("--max-steps", type=int, default=None,
                   help="step budget of every episode (default: the task's; slow demonstrations need about 400)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 1)))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from tqdm import tqdm

    from ..data.bag_io import find_partial_bags, list_episode_bags

    plans = {t: episode_plan(t, args.episodes_per_task, args.expert_fraction, args.attempts_per_placement) for t in args.tasks}
    args.out.mkdir(parents=True, exist_ok=True)
    done = {b.name for b in list_episode_bags(args.out)}
    settings = {"expert_fraction": args.expert_fraction, "attempts_per_placement": args.attempts_per_placement,
                "image_size": args.image_size}
    # recorded only when not the default, so folders made before these options resume as they are
    settings.update({k: v for k, v in (("demo_kind", args.demo_kind), ("failure_kind", args.failure_kind),
                                       ("max_steps", args.max_steps)) if v not in (None, "expert")})
    check_settings(args.out, settings, has_bags=bool(done))
    stale = find_partial_bags(args.out)
    if stale:
        print(f"note: {len(stale)} unfinished .partial bags from an interrupted run are ignored (safe to delete)")
    # one attempt per placement is written as attempt 0 (the names every dataset so far has), so the
    # skip test must name bags the way _work writes them
    jobs = [(args.out, t, s, attempt or 0, mode, args.image_size, args.demo_kind, args.failure_kind, args.max_steps)
            for t in args.tasks for s, attempt, mode in plans[t] if bag_name(t, s, attempt or 0) not in done]
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
