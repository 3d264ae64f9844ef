"""Nodes as separate processes, as on a robot: start them by module, stop them by pid, show their logs,
wait for the graph, and deploy one episode through it."""
import os
import subprocess
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from qt_policy.dev.topic_pub import publish_once

TINY_TRAIN = ["--steps", "3", "--batch-size", "4", "--frames", "2", "--conv-channels", "8", "16",
              "--tokens-per-frame", "4", "--d-model", "32", "--num-layers", "1", "--num-heads", "2",
              "--num-bins", "16", "--log-every", "1", "--checkpoint-every", "100", "--no-progress", "--threads", "1"]


def own_domain_id() -> int:
    """A domain id next to the run's: nodes an earlier test had to SIGKILL stay in the run's DDS
    graph until their lease ends, and would count as a second sim_arm/qt_policy here."""
    return int(os.environ["ROS_DOMAIN_ID"]) % 100 + 1


def lane_domain_id(lane: int) -> int:
    """A domain id of its own for a test whose graph must hold nothing else: lane 1 to 5, 26 ids each, in
    101..230 (DDS computes no port above domain 232, so the lanes stay inside it and apart from each other)."""
    assert lane in range(1, 6), lane
    return 101 + 26 * (lane - 1) + int(os.environ.get("ROS_DOMAIN_ID", "0")) % 26


def start_node(module, params, log_path):
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={value}"]
    with open(log_path, "wb") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1",  # three nodes share 2 cores: no torch thread contention
               "ROS_DOMAIN_ID": str(own_domain_id())}
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(log_path.parent))


def stop_nodes(procs, timeout=15.0):
    """SIGINT to all by pid (clean shutdown, the recorder finalizes), wait, then SIGKILL."""
    from qt_policy.graph.processes import stop_processes
    stop_processes(procs, timeout)


def logs(procs):
    out = []
    for name, (_, path) in procs.items():
        try:
            out.append(f"----- {name} -----\n" + path.read_text(errors="replace")[-2500:])
        except OSError:
            pass
    return "\n".join(out)


def wait(cond, timeout, procs, what, spin=None):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        for name, (proc, _) in procs.items():
            if name != "teleop":
                assert proc.poll() is None, f"{name} exited ({proc.returncode}) while waiting for {what}\n{logs(procs)}"
        if spin is not None:
            spin.spin_once(timeout_sec=0.05)
        else:
            time.sleep(0.05)
    assert cond(), f"timed out after {timeout:g} s waiting for {what}\n{logs(procs)}"


def driver_node(name: str):
    """(context, node, executor) of a test's own node in the nodes' domain (own_domain_id), in its own
    rclpy context; end it with executor.shutdown(), node.destroy_node(), rclpy.try_shutdown(context=...)."""
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=own_domain_id())
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    return context, node, executor


def deploy_one_episode(tmp_path, nodes, instruction, startup_s, episode_s, ready=lambda node: True):
    """Start `nodes` ({name: (module, params)}: sim arm, policy, recorder) as processes, publish one
    instruction once they are connected (and `ready(node)`), wait for its EpisodeResult, stop them by
    pid. Returns (procs, EpisodeResults, the TwistStamped commands seen)."""
    from geometry_msgs.msg import TwistStamped

    from qt_msgs.msg import EpisodeResult

    procs = {}
    context, node, executor = driver_node("deploy_test_driver")
    results, twists = [], []
    try:
        for name, (module, params) in nodes.items():
            procs[name] = (start_node(module, params, tmp_path / f"deploy_{name}.log"), tmp_path / f"deploy_{name}.log")
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(EpisodeResult, "/episode_result", results.append, reliable)
        node.create_subscription(TwistStamped, "/servo_node/delta_twist_cmds", twists.append, reliable)
        wait(lambda: node.count_subscribers("/servo_node/delta_twist_cmds") >= 1
             and node.count_publishers("/servo_node/delta_twist_cmds") >= 1
             and node.count_subscribers("/instruction") >= 6 and ready(node), startup_s, procs, "the three nodes",
             spin=executor)
        pub = publish_once(node, executor, "/instruction", instruction, min_subscriptions=3)
        wait(lambda: results, episode_s, procs, "the deployed episode's result", spin=executor)
    finally:
        stop_nodes([p for p, _ in procs.values()])
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return procs, results, twists


def run_teleoperation(tmp_path, nodes: dict, timeout_s: float, bags, episodes: int) -> dict:
    """Start `nodes` ({name: (module, params)}, the scripted teleoperator named 'teleop'), wait until it has
    finished and `episodes` bags are in `bags`, stop every node by pid. Returns {name: (process, log path)}."""
    from qt_policy.data.bag_io import list_episode_bags

    procs = {}
    try:
        for name, (module, params) in nodes.items():
            procs[name] = (start_node(module, params, tmp_path / f"{name}.log"), tmp_path / f"{name}.log")
        teleop = procs["teleop"][0]
        wait(lambda: teleop.poll() is not None, timeout_s, procs, f"the teleoperator to finish its {episodes} episodes")
        assert teleop.returncode == 0, logs(procs)
        wait(lambda: len(list_episode_bags(bags)) == episodes, 10.0, procs, f"{episodes} teleop bags")
    finally:
        stop_nodes([p for p, _ in procs.values()])
    return procs
