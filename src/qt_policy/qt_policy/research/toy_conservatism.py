"""The conservatism on an exact MDP: does the shipped recipe keep Q*'s greedy action?

    python -m qt_policy.research.toy_conservatism --seeds 0 1 2 --steps 3000 --json results/algorithms/toy_mdp.json

Trains the shipped loss and training settings (LossConfig(), TrainConfig(): sampler, target rate,
averaged acting; only the network and the steps are the toy's) on the toy MDP of core/toy_mdp.py,
whose noisy data hold a better action no demonstration takes (the jump), once per conservatism and
seed, and reports in how many covered states the greedy action is Q*'s, the start state's action and
the largest |Q - Q*| of the greedy action.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np


def check(conservatism: str, seed: int, steps: int, weight: float | None) -> dict:
    from ..core import toy_mdp
    from ..core.config import LossConfig, TrainConfig

    loss_cfg = LossConfig(conservatism=conservatism)
    if weight is not None:
        loss_cfg = dataclasses.replace(loss_cfg, conservative_weight=weight)
    q_star = toy_mdp.optimal_q(loss_cfg.gamma)
    t0 = time.time()
    model, _, episodes = toy_mdp.train(loss_cfg, steps=steps, seed=seed, train_cfg=TrainConfig())
    bins, q = toy_mdp.greedy_table(model)
    optimal = toy_mdp.optimal_chain(q_star)
    mask = toy_mdp.covered_states(episodes, q_star)
    right = int(sum(np.array_equal(bins[p, t], optimal[p, t]) for p, t in zip(*np.nonzero(mask))))
    return {"conservatism": conservatism, "conservative_weight": loss_cfg.conservative_weight, "seed": seed,
            "steps": steps, "greedy_optimal": right, "covered": int(mask.sum()), "start_action": bins[0, 0].tolist(),
            "start_optimal": optimal[0, 0].tolist(),
            "max_abs_q_error": float(np.abs(q - q_star.max(axis=(-1, -2)))[mask].max()),
            "wall_time_s": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="toy_conservatism", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conservatism", nargs="+", default=["zero", "support"], help="the forms to compare")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training (and data) seeds")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps per run")
    p.add_argument("--conservative-weight", type=float, default=None, help="per-bin pull (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    rows = []
    print("| conservatism | pull per bin | seed | greedy = Q*'s greedy | start action (optimal) | max abs(Q - Q*) |")
    print("|---|---|---|---|---|---|")
    for form in args.conservatism:
        for seed in args.seeds:
            r = check(form, seed, args.steps, args.conservative_weight)
            rows.append(r)
            print(f"| {form} | {r['conservative_weight']:g} | {seed} | {r['greedy_optimal']}/{r['covered']} | "
                  f"{r['start_action']} ({r['start_optimal']}) | {r['max_abs_q_error']:.3f} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python -m qt_policy.research.toy_conservatism "
                                         + " ".join(argv if argv is not None else sys.argv[1:]), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
