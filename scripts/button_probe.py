"""Where button rollouts fail: the hand against the button, per episode, for each checkpoint.

A probe for docs/mixed-data.md, not part of the package: runs greedy rollouts of
button-press-topdown on validation placement seeds (2,000,000+) and prints, per episode, whether it
succeeded, the closest horizontal distance between hand and button (and when), and where the hand
ended relative to the button.

    python scripts/button_probe.py models/qt_metaworld runs/bc_success_s0/checkpoint --episodes 10
"""
import argparse

import numpy as np
import torch


def probe(checkpoint: str, seeds: list[int]) -> None:
    from qt_policy.core.checkpoint import load_policy_model
    from qt_policy.core.text import shared_encoder
    from qt_policy.sim.arm import SimArm
    from qt_policy.sim.tasks import get_task
    from qt_policy.tools.evaluate import BatchPolicy

    task = get_task("button-press-topdown")
    policy = BatchPolicy(load_policy_model([checkpoint]), shared_encoder())
    arms = [SimArm(64) for _ in seeds]
    try:
        obs = [arm.reset(task.name, s) for arm, s in zip(arms, seeds)]
        policy.reset(len(seeds), task.instruction)
        done = [False] * len(seeds)
        hand = [[] for _ in seeds]
        button = [[] for _ in seeds]
        for _ in range(task.max_steps):
            active = [i for i in range(len(seeds)) if not done[i]]
            if not active:
                break
            out = policy.act(obs, active)
            for k, i in enumerate(active):
                raw = obs[i].raw_obs  # hand xyz at 0:3, button xyz at 4:7
                hand[i].append(raw[:3].copy())
                button[i].append(raw[4:7].copy())
                obs[i], ok = arms[i].step(out.values[k].numpy())
                done[i] = done[i] or ok
    finally:
        for arm in arms:
            arm.close()
    print(checkpoint)
    for i, seed in enumerate(seeds):
        h, b = np.array(hand[i]), np.array(button[i])
        dxy = np.linalg.norm(h[:, :2] - b[:, :2], axis=1)
        j = int(np.argmin(dxy))
        print(f"  seed {seed} success={done[i]} steps={len(h)} closest_xy={dxy[j]:.3f} m at step {j} "
              f"final_xy={dxy[-1]:.3f} m final_dz={h[-1, 2] - b[-1, 2]:+.3f} m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed-start", type=int, default=2_000_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for checkpoint in args.checkpoints:
        probe(checkpoint, [args.seed_start + k for k in range(args.episodes)])


if __name__ == "__main__":
    main()
