"""K of issue 37's success@K, fixed before any training: 1.5x the fast scripted expert's median length of
successes on the evaluation placements (seeds 1,000,000+, 50 per task, the benchmark's three tasks).

    python -m qt_policy.research.beyond_demos_k --out results/beyond_demos/k.json

A policy succeeding within K steps is faster than the demonstrations (they take ~2.7x the expert's steps).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .beyond_demos_precheck import BENCHMARK_TASKS, measure
from .results_file import write_json


FACTOR = 1.5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="beyond_demos_k", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=BENCHMARK_TASKS,
                   help="Meta-World task names (default: the benchmark's three)")
    p.add_argument("--seed-start", type=int, default=1_000_000, help="first placement seed (default: evaluation's)")
    p.add_argument("--episodes", type=int, default=50, help="placements per task (default 50)")
    p.add_argument("--max-steps", type=int, default=400, help="step budget (default 400)")
    p.add_argument("--out", type=Path, default=None, help="write K and the measurements as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    runs = measure(args.tasks, args.episodes, args.max_steps, progress=not args.no_progress,
                   seed_start=args.seed_start, kinds=("fast",))["fast"]
    lengths = [n for n, ok in zip(runs["length"], runs["success"]) if ok]
    median = float(np.median(lengths))
    per_task = {t: float(np.median([n for n, ok, tt in zip(runs["length"], runs["success"], runs["task"]) if ok and tt == t]))
                for t in args.tasks}
    k = int(round(FACTOR * median))
    result = {"k": k, "factor": FACTOR, "fast_expert_median_length": median, "per_task_median": per_task,
              "fast_expert_success": float(np.mean(runs["success"])), "tasks": args.tasks,
              "seed_start": args.seed_start, "episodes_per_task": args.episodes, "max_steps": args.max_steps,
              "episodes": runs}
    print(f"fast expert: success {result['fast_expert_success']:.1%}, median length {median:.1f} -> K = {k}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
