"""Pre-check of issue 40's takeover flywheel, before any of its runs: how much a scripted person would drive.

    python -m qt_policy.research.takeover_precheck --checkpoint runs/fw_pre/round_0/train/checkpoint \
        --patience 60 75 90 --episodes 30 --out results/takeover/precheck.json

The round-0 policy's episodes on round 1's collection placements (3,010,000+: never evaluated on), with a
scripted person taking over after each patience (sim/operator.py): the share of the steps the person drove
(the protocol's budget: <= 20%), how often the episode ended in success, how often the person had to act
and how often their takeover rescued it. The same placements for every patience.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def measure(checkpoint: Path, tasks: list[str], patience: int, seeds: list[int], batch: int) -> dict:
    from ..core.text import shared_encoder
    from ..evaluation.policy_episodes import collect_policy_episodes
    from ..evaluation.rollout import BatchPolicy
    from ..inference import load_policy
    from ..sim.arms import make_arm, suite_of
    from ..sim.operator import ScriptedOperator
    from ..sim.tasks import get_task

    policy = BatchPolicy(load_policy([checkpoint], "torch"), shared_encoder())
    arms = [make_arm(suite_of(tasks), policy.cfg.image_size or 64) for _ in range(min(batch, len(seeds)))]
    episodes = []
    try:
        for task in tasks:
            for start in range(0, len(seeds), len(arms)):
                chunk = seeds[start:start + len(arms)]
                person = ScriptedOperator(get_task(task), patience, seed=1) if patience >= 0 else None
                episodes += collect_policy_episodes(arms, policy, get_task(task), chunk, takeover=person)
    finally:
        for arm in arms:
            arm.close()
    steps = sum(len(e) for e in episodes)
    person = [e.operator_steps for e in episodes]
    acted = [p > 0 for p in person]
    return {"patience": patience, "episodes": len(episodes), "success": float(np.mean([e.success for e in episodes])),
            "operator_share": sum(person) / max(1, steps), "person_acted": float(np.mean(acted)),
            "rescued": float(np.mean([e.success for e, a in zip(episodes, acted) if a])) if any(acted) else None,
            "steps": steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="takeover_precheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="the round-0 policy")
    p.add_argument("--tasks", nargs="+", default=["drawer-open", "window-open", "button-press-topdown"],
                   help="tasks (default: the flywheel protocol's three)")
    p.add_argument("--patience", type=int, nargs="+", default=[60, 75, 90],
                   help="steps without success before the person takes over; -1 = no person (the policy alone)")
    p.add_argument("--episodes", type=int, default=30, help="placements per task (default 30, a round's)")
    p.add_argument("--seed-start", type=int, default=3_010_000, help="first placement (default: round 1's)")
    p.add_argument("--batch", type=int, default=10, help="arms in lockstep")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    rows = []
    for patience in args.patience:
        rows.append(measure(args.checkpoint, args.tasks, patience, seeds, args.batch))
        r = rows[-1]
        rescued = "-" if r["rescued"] is None else f"{r['rescued']:.1%}"
        print(f"patience {patience:4d}: success {r['success']:6.1%}  operator share {r['operator_share']:6.1%}  "
              f"person acted in {r['person_acted']:6.1%}  rescued {rescued}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "tasks": args.tasks,
                                        "seeds": [seeds[0], seeds[-1]], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
