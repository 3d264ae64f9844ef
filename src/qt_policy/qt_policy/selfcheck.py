"""Self-check: train the core on the toy MDP, check it learned the optimal policy, decode an action.

    python -m qt_policy.selfcheck [--steps 1500]

Exits non-zero when the trained greedy policy differs from the optimal one.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500, help="gradient steps on the toy problem")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .core import toy_mdp
    from .core.config import LossConfig, ModelConfig
    from .core.decoding import greedy_decode
    from .core.model import QTransformer, count_parameters

    gamma = 0.9
    t0 = time.time()
    cfg = LossConfig(gamma=gamma, n_step=1, conservative_weight=1.0 / 255, conservatism="zero")
    print(f"[1/2] training Q-Transformer on the toy MDP ({args.steps} steps)...", flush=True)
    model, _, episodes = toy_mdp.train(cfg, steps=args.steps, seed=args.seed)
    bins, q = toy_mdp.greedy_table(model)
    q_star = toy_mdp.optimal_q(gamma)
    optimal = toy_mdp.optimal_chain(q_star)
    check = toy_mdp.covered_states(episodes, q_star)
    agree = sum(np.array_equal(bins[p, t], optimal[p, t]) for p, t in zip(*np.nonzero(check)))
    err = np.abs(q - q_star.max(axis=(-1, -2)))[check].max()
    print(f"      greedy = optimal in {agree}/{check.sum()} states the data covers, max |Q - Q*| = {err:.3f}, {time.time() - t0:.1f} s")
    print(f"      start state: greedy {bins[0, 0].tolist()} (optimal {optimal[0, 0].tolist()}), "
          f"Q = {q[0, 0]:.3f} (Q* = {q_star[0, 0].max():.3f})")

    print("[2/2] decoding one action with the default image model (untrained weights)...", flush=True)
    torch.manual_seed(args.seed)
    mcfg = ModelConfig()
    image_model = QTransformer(mcfg).eval()
    images = torch.randint(0, 256, (1,) + mcfg.image_shape(), dtype=torch.uint8)
    text = torch.nn.functional.normalize(torch.randn(1, mcfg.text_dim), dim=-1)
    t1 = time.perf_counter()
    out = greedy_decode(image_model, images, text)
    ms = (time.perf_counter() - t1) * 1e3
    values = ", ".join(f"{n}={v:+.3f}" for n, v in zip(mcfg.action_names, out.values[0].tolist()))
    print(f"      {count_parameters(image_model):,} parameters; action {values}; bins {out.bins[0].tolist()}; "
          f"Q = {out.q_value.item():.3f}; {ms:.1f} ms")
    ok = agree == check.sum()
    print("self-check passed" if ok else "self-check FAILED: the greedy policy is not optimal")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
