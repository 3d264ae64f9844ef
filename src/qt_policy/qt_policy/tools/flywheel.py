"""Rounds of deploy -> record -> retrain: a policy that learns from its own episodes.

    qt-flywheel --out runs/flywheel/qt --method qt                 # Q-Transformer on all data
    qt-flywheel --out runs/flywheel/bc_success --method bc_success # filtered BC (self-imitation)
    qt-flywheel --out runs/fw_ros --collect ros --rounds 1 --episodes-per-round 5

Round 0 trains on the seed data (--seed-demos scripted-expert successes per task, or the bags of
--seed-data). Round k deploys round k-1's policy on fresh placements (3,000,000 + 10,000 k + i, the
same for every method), records every episode with its success label as an episode bag (the format
the recorder writes) into OUT/bags, trains again from scratch on all of OUT/bags with the same
budget, and evaluates on the evaluation seeds (1,000,000+, never collected on). --collect ros runs
each deployment through the ROS graph (sim arm, policy node, recorder as processes); harness (the
default) runs the same episodes in-process, in lockstep (results/ros_loop: the same successes).
Rerun the same command after a crash: finished stages are kept (OUT/log.jsonl says what each did).
Start the same command in a second terminal to share the run: it takes the stages that need not wait
(a round's evaluation beside the next round's collection, the last round's training seeds side by side).
Compare methods with qt-flywheel-report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..flywheel import Flywheel, FlywheelConfig
from ..core.config_flags import add_dataclass_arguments, dataclass_overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-flywheel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="the run folder (rerun the command to resume)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for training and rollouts (default: 1)")
    p.add_argument("--batch", type=int, default=10,
                   help="episodes run in lockstep and decoded as one batch; each holds a simulated arm (default: 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_dataclass_arguments(p, FlywheelConfig, "the flywheel (kept in OUT/flywheel.json)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = FlywheelConfig(**dataclass_overrides(FlywheelConfig, args))
        summary = Flywheel(args.out, config, threads=args.threads, batch=args.batch,
                           progress=not args.no_progress).run()
    except (ValueError, KeyError, RuntimeError) as e:
        print(f"qt-flywheel: {e}", file=sys.stderr)
        return 2
    for row in summary["rounds"]:
        if "eval" in row:
            e = row["eval"]
            print(f"round {row['round']}: {e['success_rate']:.1%} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] "
                  f"trained on {row['trained_on']['episodes']} episodes")
    print(f"summary in {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
