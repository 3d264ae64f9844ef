"""The closed-loop demo: the shipped Q-Transformer drives the simulated arm over ROS 2, every episode recorded.

    qt-demo [--episodes-per-task 1] [--tasks drawer-open ...]
                                   [--checkpoint models/qt_metaworld] [--out data/demo_bags]

Starts three separate ROS 2 processes from launch/sim_demo.launch.xml (with the project's launch tool,
`qt_policy.dev.launch`; `ros2 launch qt_policy sim_demo.launch.xml` starts the same nodes where
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
import signal
import sys
import threading
import time
from pathlib import Path

LAUNCH_FILE = "sim_demo.launch.xml"
#: the closed loop of each simulator (sim/arms.py): its arm, its embodiment, the policy, the recorder
LAUNCH_FILES = {"metaworld": LAUNCH_FILE, "robosuite": "panda_demo.launch.xml"}
STARTUP_TIMEOUT_S = 180.0
RESULT_GRACE_S = 30.0  # beyond the recorder's episode timeout


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
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="how the policy node acts: torch (a checkpoint) or onnxruntime (an export from qt-export) "
                        "(default: torch)")
    p.add_argument("--commands", action="store_true",
                   help="drive the sim arm through TwistStamped + gripper commands (a real arm's interface) "
                        "instead of QAction")
    return p


# ----- checks before anything starts ---------------------------------------------------------------

def find_checkpoint(path: str) -> Path | None:
    from ..paths import resolve_data_path

    resolved = resolve_data_path(path)
    from ..core.checkpoint_files import CONFIG, WEIGHTS
    from ..inference.export_files import is_export

    if (resolved / CONFIG).is_file() and ((resolved / WEIGHTS).is_file() or is_export(resolved)):
        return resolved.resolve()
    return None


def check_ros() -> str | None:
    try:
        import rclpy  # noqa: F401

        from qt_msgs.msg import EpisodeResult  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return (f"ROS 2 is not set up ({type(exc).__name__}: {exc}): run `bash scripts/setup.sh` and "
                f"`source scripts/env.sh` (or use `bash scripts/demo.sh`)")
    return None


# ----- the three node processes ----------------------------------------------------------------------

def node_overrides(args, checkpoint: Path, out: Path) -> dict[str, dict[str, str]]:
    """Per-executable parameter overrides on top of the launch file's params files."""
    commands = getattr(args, "commands", False)  # the robot's interface: TwistStamped + gripper, not QAction
    return {
        "sim_arm_node": {"seed": str(args.seed), **({"action_input": "commands"} if commands else {})},
        "policy_node": {"checkpoint": str(checkpoint), "dry_run": "false" if commands else "true",
                        "backend": getattr(args, "backend", "torch")},
        "recorder_node": {"output_dir": str(out), "episode_timeout_s": repr(float(args.episode_timeout_s))},
    }


def node_env() -> dict:
    """The nodes' environment. One torch thread unless OMP_NUM_THREADS is set: three nodes share the CPU,
    and torch's default (one intra-op thread per core) was measured at ~165 ms per decision instead of
    ~12-17 ms on 2 busy cores (benchmarks/bench_policy_node.py)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_nodes(args, checkpoint: Path, out: Path, log, suite: str = "metaworld"):
    """Start sim arm, policy and recorder of `suite`'s launch file; returns (handle with .poll()/.stop(),
    description lines)."""
    overrides = node_overrides(args, checkpoint, out)
    from .launch import LaunchedProcesses, find_pkg_share, resolve_launch_file

    launch_file = find_pkg_share("qt_policy") / "launch" / LAUNCH_FILES[suite]
    nodes = resolve_launch_file(launch_file, {"checkpoint": str(checkpoint)})
    for spec in nodes:
        for name, value in overrides.get(spec.exec, {}).items():
            spec.arguments.append(("param", name, value))
    handle = LaunchedProcesses(nodes, output=log, env=node_env()).start()
    lines = [f"{spec.label} (pid {proc.pid})" for spec, proc in handle.processes]
    return handle, f"from {launch_file}: " + ", ".join(lines)


def _exited(handle):
    result = handle.poll()
    if result is None:
        return None
    who, rc = result
    return f"{getattr(who, 'label', who)} exited with code {rc}"


# ----- the driver ---------------------------------------------------------------------------------------

OUR_NODES = ("sim_arm", "qt_policy", "qt_recorder")
FAILURE_WORDS = {"success_topic": "the sim's step budget ran out", "timeout": "recorder timeout",
                 "terminate": "the policy gave up", "shutdown": "recorder stopped"}


class Driver:
    """The demo's own ROS node, in its own rclpy context."""

    def __init__(self):
        import atexit

        from .shm_segments import remove_own_segments
        atexit.register(remove_own_segments)  # Fast DDS leaves this process's segment in /dev/shm (RAM)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("qt_demo_driver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def foreign_nodes(self, wait_s: float = 2.0) -> list[str]:
        """Nodes named like ours already running in this ROS domain (another demo or test)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:  # give discovery a moment
            self.executor.spin_once(timeout_sec=0.1)
        names = self.node.get_node_names_and_namespaces()
        return sorted({f"{ns.rstrip('/')}/{name}" for name, ns in names if name in OUR_NODES})

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def run_episodes(args, tasks, handle, log_path: Path, driver: Driver) -> tuple[list[dict], str | None]:
    """Publish each instruction, wait for its EpisodeResult. Returns (results, error or None)."""
    from ..nodes.instruction_input import InstructionSender
    from ..nodes.qos import RELIABLE_10

    from qt_msgs.msg import EpisodeResult

    node, executor = driver.node, driver.executor
    results: list = []
    rows: list[dict] = []
    sender = InstructionSender(node, "/instruction")  # a new latched publisher per episode: each one is an episode
    node.create_subscription(EpisodeResult, "/episode_result", results.append, RELIABLE_10)

    def ready():
        return (node.count_publishers("/qt/action") > 0  # the policy configured (model loaded)
                and node.count_publishers("/camera/image_raw") > 0  # the sim arm
                and node.count_publishers("/episode_result") > 0  # the recorder
                and node.count_subscribers("/instruction") >= 6)  # two per node (instruction_input.py)

    print("[demo] waiting for the nodes (the policy loads the model and the text encoder)...", flush=True)
    t0 = time.monotonic()
    while not ready():
        problem = _exited(handle)
        if problem:
            return rows, f"{problem} during startup (see {log_path})"
        names = [name for name, _ in node.get_node_names_and_namespaces()]
        twice = [name for name in OUR_NODES if names.count(name) > 1]
        if twice:
            return rows, (f"more than one {', '.join(twice)} in ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')} "
                          f"(another demo or test?): set another ROS_DOMAIN_ID")
        if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
            return rows, f"the nodes were not up after {STARTUP_TIMEOUT_S:g} s (see {log_path})"
        executor.spin_once(timeout_sec=0.1)
    print(f"[demo] nodes up after {time.monotonic() - t0:.1f} s", flush=True)

    total = len(tasks) * args.episodes_per_task
    k = 0
    for task in tasks:
        for _ in range(args.episodes_per_task):
            k += 1
            results.clear()
            sender.send(task.instruction)
            started = time.monotonic()
            deadline = started + args.episode_timeout_s + RESULT_GRACE_S
            result = None
            while result is None:
                result = next((r for r in results if r.instruction == task.instruction), None)
                problem = _exited(handle)
                if problem:
                    return rows, f"{problem} during episode {k} (see {log_path})"
                if time.monotonic() > deadline:
                    return rows, f"no EpisodeResult for {task.instruction!r} within {deadline - started:.0f} s " \
                                 f"(see {log_path})"
                if result is None:
                    executor.spin_once(timeout_sec=0.1)
            row = {"task": task.name, "instruction": task.instruction, "success": bool(result.success),
                   "steps": int(result.num_steps), "reason": result.end_reason, "bag": result.bag_path,
                   "seconds": time.monotonic() - started}
            rows.append(row)
            verdict = "SUCCESS" if row["success"] else f"failure ({FAILURE_WORDS.get(row['reason'], row['reason'])})"
            print(f"[demo] {k}/{total} {task.instruction!r}: {verdict} in {row['steps']} steps "
                  f"({row['seconds']:.1f} s) -> {row['bag'] or 'NO BAG (see the log)'}", flush=True)
    sender.send("")  # stop: the policy holds, the recorder records nothing more
    executor.spin_once(timeout_sec=0.2)
    return rows, None


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def run_in_ros_graph(args, tasks, checkpoint: Path, out: Path, log_path: Path) -> tuple[list[dict], str | None]:
    """Start the three nodes, run `args.episodes_per_task` episodes of each task, stop the nodes by pid.

    `args` needs seed, episode_timeout_s, episodes_per_task and verbose (this CLI's flags; the
    evaluation CLI's --through-ros passes its own). Returns (one row per episode, error or None).
    """
    log = sys.stdout if args.verbose else open(log_path, "w", buffering=1)
    started = time.time()
    handle = driver = None
    rows: list[dict] = []
    error = None
    previous = None
    if threading.current_thread() is threading.main_thread():  # `kill PID` stops the nodes too, as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        driver = Driver()
        foreign = driver.foreign_nodes()
        if foreign:
            error = (f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')} already has {', '.join(foreign)} running "
                     f"(another demo or test?): their topics would mix with ours; set another ROS_DOMAIN_ID")
        else:
            from ..sim.arms import suite_of

            handle, how = start_nodes(args, checkpoint, out, log, suite_of([t.name for t in tasks]))
            print(f"[demo] started {how}", flush=True)
            rows, error = run_episodes(args, tasks, handle, log_path, driver)
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        if handle is not None:
            print("[demo] stopping the nodes (the recorder finalizes an open episode)...", flush=True)
            handle.stop()
        if driver is not None:
            driver.close()
        from .shm_segments import remove_stale_segments
        leftovers = remove_stale_segments(since=started)  # segments of the nodes just stopped (/dev/shm is RAM)
        if leftovers:
            print(f"[demo] removed {len(leftovers)} shared-memory segments the stopped nodes left in /dev/shm", flush=True)
        if log is not sys.stdout:
            log.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rows, error


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
    rows, error = run_in_ros_graph(args, tasks, checkpoint, out, log_path)
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
