"""The closed-loop demo: the shipped Q-Transformer drives the simulated arm over ROS 2, every episode recorded.

    qt-demo [--episodes-per-task 1] [--tasks drawer-open ...]
                                   [--checkpoint models/qt_metaworld] [--out data/demo_bags]

Starts three separate ROS 2 processes from launch/sim_demo.launch.xml (with the project's launch tool,
`qt_policy.graph`; `ros2 launch qt_policy sim_demo.launch.xml` starts the same nodes where
launch_ros exists):

* sim_arm      the Meta-World Sawyer with a 64 px camera (placements from seed 1000 on: unseen in training),
* qt_policy    the policy node with the model (QAction only: dry_run, there is no MoveIt here),
* qt_recorder  one rosbag2 episode bag per instruction, in --out.

Then, as a small driver node, it publishes each task's instruction (std_msgs/String, transient-local,
a new publisher per episode), waits for the recorder's qt_msgs/EpisodeResult, prints success, steps
and the bag of every episode and a summary, and stops the processes by pid. The bags are training data as they are:
`qt-train --data OUT --out runs/more ...`.
Node output goes to a log file (its path is printed); --verbose shows it on the console.
Exit status: 0 when every episode produced a result (whatever its success), 1 otherwise, 2 on setup errors.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..graph.episodes import GraphRun, add_policy_flags, check_ros, find_checkpoint, run_in_ros_graph

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-demo", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes-per-task", type=int, default=1, help="episodes of each task (default 1)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="task names (default: all; see qt_policy/sim/tasks.py)")
    p.add_argument("--checkpoint", default="models/qt_metaworld",
                   help="model directory (default: the shipped models/qt_metaworld; relative paths are looked up "
                        "in the cwd, share/qt_policy and the repository)")
    p.add_argument("--out", default="data/demo_bags", help="folder for the episode bags (default data/demo_bags)")
    p.add_argument("--episode-timeout-s", type=float, default=30.0,
                   help="the recorder ends an episode as a failure after this long (default 30)")
    p.add_argument("--seed", type=int, default=1000,
                   help="sim placement seed of each task's first episode; episode k uses seed + k (default 1000)")
    p.add_argument("--log", default=None, help="node output file (default: $ROS_LOG_DIR/demo-<pid>.log)")
    p.add_argument("--verbose", action="store_true", help="show the nodes' output on the console")
    add_policy_flags(p, "how the policy node acts: torch (a checkpoint) or onnxruntime (an export from qt-export) "
                        "(default: torch)",
                     "drive the sim arm through TwistStamped + gripper commands (a real arm's interface) instead of QAction")
    return p


def print_summary(rows: list[dict], out: Path) -> None:
    if not rows:
        return
    print("\n[demo] summary")
    print(f"  {'task':<22} {'success':>9} {'mean steps':>11}")
    for name in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == name]
        wins = sum(r["success"] for r in mine)
        print(f"  {name:<22} {wins:>4}/{len(mine):<4} {sum(r['steps'] for r in mine) / len(mine):>11.1f}")
    wins = sum(r["success"] for r in rows)
    print(f"  {'all':<22} {wins:>4}/{len(rows):<4}   success rate {wins / len(rows):.0%}")
    print(f"[demo] {sum(bool(r['bag']) for r in rows)} episode bags in {out}; train on them with\n"
          f"       qt-train --data {out} --out runs/demo_finetune")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..sim.tasks import TASKS, get_task

    if args.episodes_per_task < 1:
        print("[demo] error: --episodes-per-task must be >= 1", file=sys.stderr)
        return 2
    try:
        tasks = [get_task(name) for name in (args.tasks or list(TASKS))]
    except KeyError as exc:
        print(f"[demo] error: {exc.args[0]}", file=sys.stderr)
        return 2
    checkpoint = find_checkpoint(args.checkpoint)
    if checkpoint is None:
        print(f"[demo] error: no model at {args.checkpoint!r} (a model directory holds config.json and "
              f"model.safetensors). The shipped model is models/qt_metaworld; if it is missing, train one:\n"
              f"         qt-generate --out data/bags && "
              f"qt-train --data data/bags --out runs/qt\n"
              f"       and run the demo with --checkpoint runs/qt/checkpoint", file=sys.stderr)
        return 2
    problem = check_ros()
    if problem:
        print(f"[demo] error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(os.environ.get("ROS_LOG_DIR") or Path.cwd() / ".ros" / "log")
    log_path = Path(args.log) if args.log else log_dir / f"demo-{os.getpid()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    print(f"[demo] model {checkpoint}\n[demo] {len(tasks)} task(s) x {args.episodes_per_task} episode(s); "
          f"bags -> {out}; node output -> {'console' if args.verbose else log_path}", flush=True)
    run = GraphRun(episodes_per_task=args.episodes_per_task, seed=args.seed, episode_timeout_s=args.episode_timeout_s,
                   verbose=args.verbose, commands=args.commands, backend=args.backend)
    rows, error = run_in_ros_graph(run, tasks, checkpoint, out, log_path)
    print_summary(rows, out)
    if error:
        print(f"[demo] error: {error}", file=sys.stderr)
        if not args.verbose and log_path.is_file():
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            print("[demo] last node output:\n  " + "\n  ".join(tail), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
