"""How often did training touch each transition? Expected draws per step of a successful and of a failed
episode over a whole run, from a checkpoint's own settings and its data's manifest.

    python -m qt_policy.research.sampler_coverage runs/beyond_demos/qt_s0/checkpoint ... [--out F.json]

The sampler (`data.dataset.TransitionSampler`) draws round(f * batch) of each batch uniformly over the
successes' steps and the rest uniformly over all held steps (f = success_batch_fraction). Q-learning can
only carry value through the steps it draws: a failure step drawn a tenth of a time in a whole run never
gets a Bellman update, and the run behaves as imitation of the successes, whatever its loss says.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .results_file import write_json


def expected_draws(success_steps: int, failure_steps: int, success_fraction: float, batch_size: int,
                   steps: int) -> dict[str, float]:
    """Expected times each step is drawn in `steps` batches, for a step of a successful and of a failed episode."""
    total = success_steps + failure_steps
    from_successes = round(success_fraction * batch_size) if failure_steps and success_steps else 0
    rest = batch_size - from_successes  # uniform over every held step
    per_success = steps * (from_successes / success_steps + rest / total) if success_steps else 0.0
    return {"per_success_step": per_success, "per_failure_step": steps * rest / total if failure_steps else 0.0,
            "success_share_of_draws": per_success * success_steps / (steps * batch_size) if steps else 0.0}


def run_coverage(checkpoint: Path, shards: Path | None = None) -> dict:
    """expected_draws for a trained checkpoint: its steps, batch size, sampler and the steps of its data
    (the shard folder its config names, or `shards`)."""
    from ..core.checkpoint import read_config
    from ..data.shard_format import load_manifest
    from .algorithms import sampler_name

    cfg = read_config(checkpoint)
    data, train = cfg["data"], cfg["train"]
    if data["success_only"]:
        success_steps, failure_steps = data["steps"], 0
    else:
        tasks = set(data["tasks"] or [])
        groups = [g for s in load_manifest(shards or data.get("shards") or data["cache"])["shards"] for g in s["groups"]
                  if not tasks or g["task"] in tasks]
        success_steps = sum(g["steps"] for g in groups if g["success"])
        failure_steps = sum(g["steps"] for g in groups if not g["success"])
    draws = expected_draws(success_steps, failure_steps, train["success_batch_fraction"], train["batch_size"],
                           cfg["step"])
    return {"checkpoint": str(checkpoint), "algo": train["algo"], "sampler": sampler_name(train, data["success_only"]),
            "success_batch_fraction": train["success_batch_fraction"], "batch_size": train["batch_size"],
            "steps": cfg["step"], "success_steps": success_steps, "failure_steps": failure_steps, **draws}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sampler_coverage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint folders (their config names the data)")
    p.add_argument("--shards", type=Path, default=None,
                   help="the data's shard folder, where it moved since training (default: the one the config names)")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = p.parse_args(argv)
    rows = [run_coverage(c, args.shards) for c in args.checkpoints]
    print(f"{'checkpoint':48s} {'sampler':>26s} {'draws/success step':>19s} {'draws/failure step':>19s}")
    for r in rows:
        print(f"{r['checkpoint'][-48:]:48s} {r['sampler']:>26s} {r['per_success_step']:19.2f} {r['per_failure_step']:19.3f}")
    if args.out:
        write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
