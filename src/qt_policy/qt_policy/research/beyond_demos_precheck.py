"""Pre-checks of issue 37's benchmark of imperfect demonstrations, before any training.

    python -m qt_policy.research.beyond_demos_precheck --tasks drawer-open window-open button-press-topdown \
        --seeds 20 --max-steps 400 --out results/beyond_demos/prechecks.json

For each task and placement seed 0..N-1 (the generator's seeds) it runs the fast scripted expert, the
slow hesitating demonstrator (`slow_expert`, sim/scripted.py) and the interrupted expert
(`interrupted_expert`: the fast expert in pieces between held random actions)
for at most --max-steps, and checks what the protocol (docs/experiments/beyond-demos.md) requires of the
data: demonstrations succeed >= 90%, their median length is >= 2x the fast expert's, interrupted
episodes succeed <= 5%. Exit status 0 only when all three hold.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .results_file import write_json

#: the benchmark's three Meta-World tasks (docs/experiments/beyond-demos.md)
BENCHMARK_TASKS = ["drawer-open", "window-open", "button-press-topdown"]
KINDS = {"fast": ("expert", "expert"), "slow": ("expert", "slow_expert"), "interrupted": ("noisy", "interrupted_expert")}


def measure(tasks: list[str], seeds: int, max_steps: int, progress: bool = True, seed_start: int = 0,
            kinds: tuple[str, ...] = tuple(KINDS)) -> dict:
    """Per kind: success, length and task of every episode at placement seeds seed_start.. (N per task)."""
    from tqdm import tqdm

    from ..sim.arms import make_arm
    from ..sim.collect import collect_episode
    from ..sim.tasks import get_task

    arm = make_arm(get_task(tasks[0]).suite, 64)
    out: dict = {name: {"success": [], "length": [], "task": []} for name in kinds}
    jobs = [(t, s, name) for t in tasks for s in range(seed_start, seed_start + seeds) for name in kinds]
    for task, seed, name in tqdm(jobs, disable=not progress, desc="episodes", dynamic_ncols=True):
        mode, kind = KINDS[name]
        ep = collect_episode(arm, task, seed, mode, policy_kind=kind, max_steps=max_steps)
        out[name]["success"].append(bool(ep.success))
        out[name]["length"].append(len(ep))
        out[name]["task"].append(task)
    arm.close()
    return out


def verdict(runs: dict) -> dict:
    def median_success_length(r):
        lengths = [n for n, ok in zip(r["length"], r["success"]) if ok]
        return float(np.median(lengths)) if lengths else float("nan")

    rows = {name: {"episodes": len(r["success"]), "success": float(np.mean(r["success"])),
                   "median_length_of_successes": median_success_length(r)} for name, r in runs.items()}
    ratio = rows["slow"]["median_length_of_successes"] / rows["fast"]["median_length_of_successes"]
    checks = {"demonstrations succeed >= 90%": rows["slow"]["success"] >= 0.9,
              "their median length >= 2x the fast expert's": bool(ratio >= 2.0),
              "interrupted episodes succeed <= 5%": rows["interrupted"]["success"] <= 0.05}
    return {"rows": rows, "slow_over_fast_median_length": ratio, "checks": checks, "all_hold": all(checks.values())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="beyond_demos_precheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=BENCHMARK_TASKS,
                   help="Meta-World task names (default: the benchmark's three)")
    p.add_argument("--seeds", type=int, default=20, help="placement seeds 0..N-1 per task (default 20)")
    p.add_argument("--max-steps", type=int, default=400, help="step budget of every episode (default 400)")
    p.add_argument("--out", type=Path, default=None, help="write the measurements and the verdict as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    runs = measure(args.tasks, args.seeds, args.max_steps, progress=not args.no_progress)
    result = {"tasks": args.tasks, "seeds": args.seeds, "max_steps": args.max_steps, **verdict(runs), "episodes": runs}
    for name, row in result["rows"].items():
        print(f"{name:<12} success {row['success']:6.1%}  median length of successes {row['median_length_of_successes']:6.1f}")
    for check, ok in result["checks"].items():
        print(f"{'HOLDS' if ok else 'FAILS':<6} {check}")
    if args.out:
        write_json(args.out, result)
    return 0 if result["all_hold"] else 1


if __name__ == "__main__":
    sys.exit(main())
