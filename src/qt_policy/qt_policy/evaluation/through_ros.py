"""The evaluation's episodes through the ROS graph: the sim arm, the policy node and the recorder as processes."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .stats import summarize


def evaluate_through_ros(checkpoint: Path, tasks: list[str], episodes: int, seed_start: int, out_dir: Path,
                         episode_timeout_s: float = 30.0, verbose: bool = False, commands: bool = False,
                         backend: str = "torch", takeover_after: int = 0, person_record: str = "",
                         max_steps: int | None = None) -> dict:
    """The same evaluation through the ROS graph: the sim arm, the policy and the recorder as separate
    processes from launch/sim_demo.launch.xml (the product path), the k-th episode of each task on
    placement seed_start + k as in `evaluate`. Success is the recorder's EpisodeResult. With takeover_after > 0
    a scripted person (nodes/scripted_operator_node.py) takes over after that many frames without success
    and writes what it drove to `person_record`. max_steps: the sim arm's step budget (default: the task's);
    the recorder's episode timeout then grows to fit it at the sim's rate."""
    from ..graph.episodes import GraphRun, find_checkpoint, run_in_ros_graph
    from ..sim.tasks import get_task

    resolved = find_checkpoint(str(checkpoint))
    if resolved is None:
        raise FileNotFoundError(f"no model at {checkpoint}")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "nodes.log"
    if max_steps:  # the sim arm ends the episode at max_steps; the recorder's timeout is only a guard behind it
        from ..sim.driver import SimArmNodeConfig
        episode_timeout_s = max(episode_timeout_s, 1.5 * max_steps / SimArmNodeConfig.rate_hz)
    run = GraphRun(episodes_per_task=episodes, seed=seed_start, episode_timeout_s=episode_timeout_s,
                   verbose=verbose, commands=commands, backend=backend, takeover_after=takeover_after,
                   person_record=person_record, max_steps=max_steps or 0)
    t0 = time.time()
    rows, error = run_in_ros_graph(run, [get_task(n) for n in tasks], resolved, out_dir / "bags", log_path)
    if error:
        raise RuntimeError(f"through-ROS evaluation stopped: {error}")
    results = {"checkpoint": str(checkpoint), "episodes_per_task": episodes, "seed_start": seed_start,
               "path": "ros (TwistStamped + gripper)" if commands else "ros", "backend": backend,
               "max_steps": max_steps, "tasks": {}}
    for name in tasks:
        mine = [r for r in rows if r["task"] == name]
        results["tasks"][name] = {"instruction": get_task(name).instruction, "successes": sum(r["success"] for r in mine),
                                  "episodes": len(mine), "mean_length": float(np.mean([r["steps"] for r in mine])),
                                  "seeds": [seed_start + k for k in range(len(mine))],
                                  "per_episode": [bool(r["success"]) for r in mine],
                                  "lengths": [int(r["steps"]) for r in mine]}
    results = summarize(results)
    results["wall_time_s"] = time.time() - t0
    return results
