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
    from qt_policy.tools.evaluate import BatchPolicy, run_task

    task = get_task("button-press-topdown")
    model = load_policy_model([checkpoint])
    policy = BatchPolicy(model, shared_encoder())
    arms = [SimArm(image_size=model.cfg.image_size or 64) for _ in seeds]
    hand = [[] for _ in seeds]
    button = [[] for _ in seeds]

    def trace(i, observation):  # raw obs: hand xyz at 0:3, button xyz at 4:7
        hand[i].append(observation.raw_obs[:3].copy())
        button[i].append(observation.raw_obs[4:7].copy())

    try:
        success, _, _, _ = run_task(arms, policy, task, seeds, on_step=trace)
    finally:
        for arm in arms:
            arm.close()
    print(checkpoint)
    for i, seed in enumerate(seeds):
        h, b = np.array(hand[i]), np.array(button[i])
        dxy = np.linalg.norm(h[:, :2] - b[:, :2], axis=1)
        j = int(np.argmin(dxy))
        print(f"  seed {seed} success={success[i]} steps={len(h)} closest_xy={dxy[j]:.3f} m at step {j} "
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
