"""Closed-loop evaluation on the simulated arm: success rate per task with a 95% Wilson interval.

    qt-evaluate --checkpoint runs/qt/checkpoint --episodes 50 --out results/qt.json
    qt-evaluate --checkpoint models/qt_metaworld --tasks drawer-open --episodes 2 \
        --video results/videos --q-plot results/q
    qt-evaluate --checkpoint runs/a/checkpoint runs/b/checkpoint   # ensemble: mean Q

Evaluation seeds start at --seed-start (default 1,000,000), far from the dataset generator's seeds
(0..), so no placement seen in training is evaluated. Episodes of a task run in lockstep and the
policy decodes them as one batch (greedy, no exploration).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..evaluation import EVAL_SEED_START, evaluate_through_ros
from ..evaluation.parallel import evaluate_in_processes
from ..evaluation.stats import success_within
from ..graph.episodes import add_policy_flags


def main(argv=None) -> int:
    from ..sim.arms import tasks_for_checkpoint
    from ..sim.tasks import all_tasks

    p = argparse.ArgumentParser(prog="qt-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, nargs="+",
                   help="checkpoint directory; several = an ensemble acting on their mean Q")
    p.add_argument("--tasks", nargs="+", default=None, choices=list(all_tasks()),
                   help="sim tasks (default: the arm's: Meta-World's seven, or lift door stack for a model "
                        "trained on the robosuite Panda)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per task (default 50)")
    p.add_argument("--seed-start", type=int, default=EVAL_SEED_START)
    p.add_argument("--batch", type=int, default=10, help="episodes run in lockstep and decoded as one batch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=1,
                   help="processes, one task at a time each, one torch thread each (the same results; default 1)")
    p.add_argument("--out", type=Path, help="write results as JSON here")
    p.add_argument("--video", type=Path, help="save a GIF of the first episode of each task in this folder")
    p.add_argument("--q-plot", type=Path, help="save a plot of the greedy Q over the first episode of each task here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--through-ros", action="store_true",
                   help="run the episodes through the ROS graph instead: sim arm, policy node and recorder as "
                        "separate processes (launch/sim_demo.launch.xml; panda_demo.launch.xml for the Panda), in real time at the control rate")
    p.add_argument("--ros-out", type=Path, default=Path("data/eval_ros"),
                   help="with --through-ros: folder for the episode bags and the nodes' log (default data/eval_ros)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="step budget of every episode (default: the task's; through ROS the sim arm's max_steps); "
                        "the JSON lists every episode's length")
    p.add_argument("--success-within", type=int, default=None, metavar="K",
                   help="also success@K, the share of episodes that succeeded within K steps "
                        "(issue 37's benchmark: K = 1.5x the fast expert's median length)")
    p.add_argument("--command-lag", type=float, default=0.0,
                   help="harness only: execute (1 - LAG) x the new dx, dy, dz + LAG x the previous step's, as a velocity "
                        "interface with decision latency LAG x period does (default 0: the decoded action)")
    add_policy_flags(p, "act with torch (CHECKPOINT is a checkpoint or several for an ensemble) or onnxruntime "
                        "(CHECKPOINT is an export from qt-export) (default: torch)",
                     "with --through-ros: the policy drives the sim arm through TwistStamped + gripper commands "
                     "(a real arm's interface: the embodiment file's twist and gripper) instead of QAction")
    args = p.parse_args(argv)
    args.tasks = args.tasks or tasks_for_checkpoint(args.checkpoint[0])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.through_ros:
        if len(args.checkpoint) != 1 or args.video or args.q_plot:
            p.error("--through-ros takes one checkpoint and no --video/--q-plot")
        res = evaluate_through_ros(args.checkpoint[0], args.tasks, args.episodes, args.seed_start, args.ros_out,
                                   commands=args.commands, backend=args.backend, max_steps=args.max_steps)
    else:
        kwargs = dict(checkpoint=args.checkpoint, episodes=args.episodes, seed_start=args.seed_start,
                      batch=args.batch, video_dir=args.video, q_dir=args.q_plot, command_lag=args.command_lag,
                      backend=args.backend, max_steps=args.max_steps)
        res = evaluate_in_processes(kwargs, args.tasks, args.workers, progress=not args.no_progress)
    for name, r in res["tasks"].items():
        print(f"{name:<22} {r['success_rate']:6.1%}  [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]  "
              f"({r['successes']}/{r['episodes']}, mean length {r['mean_length']:.0f})")
    if args.success_within is not None:
        at_k = success_within(res, args.success_within)
        print(f"{'success@' + str(at_k['k']):<22} {at_k['mean']:6.1%}  (mean over tasks)")
    print(f"{'mean':<22} {res['mean_success']:6.1%}  overall CI [{res['overall']['ci95'][0]:.2f}, {res['overall']['ci95'][1]:.2f}]"
          f"  ({res['wall_time_s']:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
