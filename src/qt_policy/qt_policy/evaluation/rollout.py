"""Greedy rollouts of a checkpoint on the simulated arm, episodes of a task in lockstep decoded as one batch.

Evaluation seeds start at EVAL_SEED_START (1,000,000), far from the dataset generator's seeds (0..),
so no placement seen in training is evaluated.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .stats import summarize

EVAL_SEED_START = 1_000_000


class BatchPolicy:
    """Greedy policy for a batch of arms: frame history, instruction, state, then the backend's `act`
    (a torch model, an ensemble, or an onnxruntime export: inference/backends.py)."""

    def __init__(self, model, embed):
        from ..inference.backends import as_policy

        self.policy, self.embed = as_policy(model), embed
        self.cfg = self.policy.cfg

    def reset(self, batch: int, instruction: str):
        from ..data.observation import FrameHistory

        self.text = np.repeat(np.asarray(self.embed(instruction), np.float32)[None], batch, axis=0)
        self.history = [FrameHistory(self.cfg.frames) for _ in range(batch)]

    def act(self, observations, active: list[int]):
        from ..data.observation import prepare_cameras

        cfg = self.cfg
        frames, states = [], []
        for i in active:
            if cfg.image_size:  # the one observation pipeline (the node and the training shards use it too)
                cameras = observations[i].camera_images[:cfg.cameras]
                frames.append(self.history[i].push(prepare_cameras(cameras, cfg.image_size, cfg.image_crop)))
            states.append(observations[i].state)
        images = np.stack(frames) if cfg.image_size else None
        state = np.stack(states).astype(np.float32) if cfg.state_dim else None
        return self.policy.act(images, self.text[active], state)


def run_task(arms, policy: BatchPolicy, task, seeds: list[int], record_first: bool = False, on_step=None,
             command_lag: float = 0.0, on_action=None, max_steps: int | None = None, takeover=None):
    """Run len(seeds) episodes in lockstep; returns successes, lengths, Q traces and frames of episode 0.

    on_step(i, observation), if given, sees episode i's observation before each of its actions
    (probes use it to trace the scene without a rollout loop of their own).
    on_action(i, observation, action), if given, sees each action as the arm executes it (clipped,
    after the command lag) with the observation it was decided on: what a recorder keeps.
    command_lag (0..1): model a velocity interface with decision latency, as the sim arm driven by
    TwistStamped is: each step executes (1 - lag) x the new velocity dimensions + lag x the previous
    step's (the previous command stays in force until the new one arrives, lag = latency / control
    period; robot/command_window.py); the gripper, a position command, is the new one. 0 = the
    decoded action. The velocity dimensions are all but the last (the gripper), on either arm.
    takeover(i, observation, t), if given, may return an action a person executes instead of the
    policy's (sim/operator.py; the policy node's mux on a robot).
    """
    n = len(seeds)
    obs = [arm.reset(task.name, s) for arm, s in zip(arms, seeds)]
    policy.reset(n, task.instruction)
    done = [False] * n
    success = [False] * n
    limit = task.max_steps if max_steps is None else int(max_steps)  # the step budget (default: the task's)
    lengths = [limit] * n
    q_trace: list[list[float]] = [[] for _ in range(n)]
    frames = [obs[0].image] if record_first else []
    previous: list = [None] * n  # the velocity dimensions of each episode's previous step
    for t in range(limit):
        active = [i for i in range(n) if not done[i]]
        if not active:
            break
        out = policy.act(obs, active)
        for k, i in enumerate(active):
            q_trace[i].append(float(out.q_value[k]))
            if on_step is not None:
                on_step(i, obs[i])
            action = np.array(out.values[k], dtype=np.float32)
            person = takeover(i, obs[i], t) if takeover is not None else None
            if person is not None:
                action = np.asarray(person, dtype=np.float32)
            if command_lag:
                new = action[:-1].copy()
                action[:-1] = (1.0 - command_lag) * new + (command_lag * previous[i] if t else 0.0)
                previous[i] = new
            if on_action is not None:
                on_action(i, obs[i], arms[i].clip_action(action))
            obs[i], ok = arms[i].step(action)
            if i == 0 and record_first:
                frames.append(obs[i].image)
            if ok:
                done[i], success[i], lengths[i] = True, True, t + 1
    return success, lengths, q_trace, frames


def plot_q(q_trace: list[float], success: bool, title: str, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.8))
    ax.plot(q_trace, color="tab:green" if success else "tab:red")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("greedy Q (est. success)")
    ax.set_title(f"{title} ({'success' if success else 'failure'})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(checkpoint: Path | list[Path], tasks: list[str], episodes: int, seed_start: int, batch: int,
             video_dir: Path | None = None, q_dir: Path | None = None, progress: bool = True,
             command_lag: float = 0.0, backend: str = "torch", max_steps: int | None = None) -> dict:
    """Every task's `episodes` from seed `seed_start` on, `batch` arms in lockstep (several processes:
    evaluation/parallel.py)."""
    from tqdm import tqdm

    from ..core.text import shared_encoder
    from ..sim.arms import make_arm, suite_of
    from ..sim.tasks import get_task

    checkpoints = checkpoint if isinstance(checkpoint, list) else [checkpoint]
    from ..inference import load_policy

    model = load_policy(checkpoints, backend)  # several torch checkpoints: an ensemble on their mean Q
    policy = BatchPolicy(model, shared_encoder())
    arms = [make_arm(suite_of(tasks), model.cfg.image_size or 64) for _ in range(batch)]
    results = {"checkpoint": ",".join(map(str, checkpoints)), "episodes_per_task": episodes, "seed_start": seed_start,
               "path": "harness" + (f" (command lag {command_lag:g})" if command_lag else ""), "backend": backend,
               "max_steps": max_steps, "tasks": {}}
    t0 = time.time()
    bar = tqdm(total=episodes * len(tasks), disable=not progress, desc="episodes", dynamic_ncols=True)
    try:
        for name in tasks:
            task = get_task(name)
            succ, lens = [], []
            for start in range(0, episodes, batch):
                seeds = [seed_start + k for k in range(start, min(start + batch, episodes))]
                first = start == 0
                s, lengths, q_trace, frames = run_task(arms[:len(seeds)], policy, task, seeds,
                                                       record_first=first and video_dir is not None,
                                                       command_lag=command_lag, max_steps=max_steps)
                succ += s
                lens += lengths
                if first and q_dir is not None:
                    q_dir.mkdir(parents=True, exist_ok=True)
                    plot_q(q_trace[0], s[0], f"{task.instruction} seed {seeds[0]}", q_dir / f"{name}.png")
                if first and video_dir is not None:
                    import imageio.v2 as imageio
                    video_dir.mkdir(parents=True, exist_ok=True)
                    imageio.mimsave(video_dir / f"{name}.gif", frames, duration=0.1)
                bar.update(len(seeds))
            results["tasks"][name] = {"instruction": task.instruction, "successes": int(sum(succ)),
                                      "episodes": len(succ), "mean_length": float(np.mean(lens)),
                                      "seeds": [seed_start + k for k in range(episodes)],
                                      "per_episode": [bool(x) for x in succ], "lengths": [int(x) for x in lens]}
    finally:
        bar.close()
        for arm in arms:
            arm.close()
    results = summarize(results)
    results["wall_time_s"] = time.time() - t0
    return results
