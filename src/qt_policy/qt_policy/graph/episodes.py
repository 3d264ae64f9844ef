"""Episodes through the ROS graph: the sim arm, the policy node and the recorder of a launch file as
three processes, a small driver node that sends each instruction and waits for the recorder's
EpisodeResult, every process ended by its pid. The demo (qt-demo), the evaluation's --through-ros and
the flywheel's collection through ROS all run here."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .launch_resolve import find_pkg_share
from .launch_xml import resolve_launch_file
from .processes import LaunchedProcesses

LAUNCH_FILE = "sim_demo.launch.xml"
#: the closed loop of each simulator (sim/arms.py): its arm, its embodiment, the policy, the recorder
LAUNCH_FILES = {"metaworld": LAUNCH_FILE, "robosuite": "panda_demo.launch.xml"}
TAKEOVER_LAUNCH_FILE = "sim_takeover.launch.xml"  # the Sawyer's loop with a scripted person in it
STARTUP_TIMEOUT_S = 180.0
RESULT_GRACE_S = 30.0  # beyond the recorder's episode timeout




def add_policy_flags(p, backend_help: str, commands_help: str) -> None:
    """--backend and --commands: how the policy node acts and how it drives the arm (qt-demo's and
    qt-evaluate --through-ros's flags, each with its own help)."""
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"], help=backend_help)
    p.add_argument("--commands", action="store_true", help=commands_help)


@dataclass
class GraphRun:
    """How the graph's episodes run (the demo's flags, the evaluation's --through-ros settings)."""

    episodes_per_task: int = 1
    seed: int = 1000  # sim placement seed of each task's first episode; episode k uses seed + k
    episode_timeout_s: float = 30.0  # the recorder ends an episode as a failure after this long
    verbose: bool = False  # the nodes' output on the console instead of the log file
    commands: bool = False  # drive the arm through TwistStamped + gripper (a real arm's interface), not QAction
    backend: str = "torch"  # how the policy node acts: torch (a checkpoint) or onnxruntime (an export)
    takeover_after: int = 0  # > 0: a scripted person takes over after this many frames without success
    person_record: str = ""  # where the person writes what it drove (JSON lines)
    max_steps: int = 0  # actions the sim arm applies before it ends an episode as a failure; 0 = the task's


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


def domain_problem() -> str | None:
    """DDS derives its ports from ROS_DOMAIN_ID and has none above 232: say so before any node starts."""
    value = os.environ.get("ROS_DOMAIN_ID", "0")
    if not value.isdigit() or int(value) > 232:
        return f"ROS_DOMAIN_ID={value!r} is not a domain DDS can use: set a whole number from 0 to 232 (0-101 is safest)"
    return None


# ----- the three node processes ----------------------------------------------------------------------

def node_overrides(run: GraphRun, checkpoint: Path, out: Path) -> dict[str, dict[str, str]]:
    """Per-executable parameter overrides on top of the launch file's params files."""
    commands = run.commands  # the robot's interface: TwistStamped + gripper, not QAction
    return {
        "sim_arm_node": {"seed": str(run.seed), **({"action_input": "commands"} if commands else {}),
                         **({"max_steps": str(run.max_steps)} if run.max_steps else {})},
        "policy_node": {"checkpoint": str(checkpoint), "dry_run": "false" if commands else "true",
                        "backend": run.backend},
        "recorder_node": {"output_dir": str(out), "episode_timeout_s": repr(float(run.episode_timeout_s))},
        "scripted_operator_node": {"patience": str(run.takeover_after), "record_path": run.person_record,
                                   "seed": str(run.seed)},
    }


def node_env() -> dict:
    """The nodes' environment. One torch thread unless OMP_NUM_THREADS is set: three nodes share the CPU,
    and torch's default (one intra-op thread per core) was measured at ~165 ms per decision instead of
    ~12-17 ms on 2 busy cores (benchmarks/bench_policy_node.py)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_nodes(run: GraphRun, checkpoint: Path, out: Path, log, suite: str = "metaworld"):
    """Start sim arm, policy and recorder of `suite`'s launch file; returns (handle with .poll()/.stop(),
    description lines)."""
    overrides = node_overrides(run, checkpoint, out)

    if run.takeover_after and suite != "metaworld":
        raise ValueError("a scripted person in the loop runs on the Meta-World Sawyer only")
    name = TAKEOVER_LAUNCH_FILE if run.takeover_after else LAUNCH_FILES[suite]
    launch_file = find_pkg_share("qt_policy") / "launch" / name
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


def run_episodes(run: GraphRun, tasks, handle, log_path: Path, driver: Driver) -> tuple[list[dict], str | None]:
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

    total = len(tasks) * run.episodes_per_task
    k = 0
    for task in tasks:
        for _ in range(run.episodes_per_task):
            k += 1
            results.clear()
            sender.send(task.instruction)
            started = time.monotonic()
            deadline = started + run.episode_timeout_s + RESULT_GRACE_S
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


def run_in_ros_graph(run: GraphRun, tasks, checkpoint: Path, out: Path, log_path: Path) -> tuple[list[dict], str | None]:
    """Start the three nodes, run `run.episodes_per_task` episodes of each task, stop the nodes by pid.

    Returns (one row per episode, error or None).
    """
    problem = domain_problem()
    if problem:
        return [], problem
    log = sys.stdout if run.verbose else open(log_path, "w", buffering=1)
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

            handle, how = start_nodes(run, checkpoint, out, log, suite_of([t.name for t in tasks]))
            print(f"[demo] started {how}", flush=True)
            rows, error = run_episodes(run, tasks, handle, log_path, driver)
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
