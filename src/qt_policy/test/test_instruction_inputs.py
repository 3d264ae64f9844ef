"""Instructions from any ordinary client, and a recorder that hears them late (ROS graph, separate processes).

The simulated arm and the policy node run as processes; the recorder runs in this process and hears every
instruction 0.5 s after the arm and the policy did (its instruction callback is delayed, as a busy
executor or a late DDS match would delay it). The clients publish as `ros2 topic pub` does with its
defaults: `--once` (a volatile publisher that waits for one subscription), `-t 3` (the same text three
times at 1 Hz), and a latched publisher; then a node starts after a latched instruction was sent.
Each must start exactly one episode in every node, and every bag must hold the steps the arm executed,
from the arm's first frame of the episode, with nothing of the previous one.
"""
import dataclasses
import re
import time

import numpy as np
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from qt_policy.data.bag_io import read_episode_bag
from qt_policy.dev.topic_pub import publish_once
from qt_policy.nodes.qos import RELIABLE_10
from qt_test_helpers.models import tiny_checkpoint
from qt_test_helpers.nodes import driver_node, logs, start_node, stop_nodes

MAX_STEPS = 15
LATE_S = 0.5
EPISODES = (("open the drawer", "drawer-open"), ("close the drawer", "drawer-close"), ("open the window", "window-open"))


def make_recorders(context, out_dir):
    from qt_policy.nodes.recorder_node import RecorderNode

    class LateRecorder(RecorderNode):
        """Hears each instruction LATE_S after it arrived; everything else on time."""

        def _on_instruction(self, instruction, raw):
            def later():
                self.destroy_timer(timer)
                now = self.get_clock().now().nanoseconds
                RecorderNode._on_instruction(self, dataclasses.replace(instruction, received_ns=now), raw)
            timer = self.create_timer(LATE_S, later)

    def recorder(cls, name, folder):
        node = cls(context=context, parameter_overrides=[
            Parameter("output_dir", value=str(folder)), Parameter("min_free_disk_mb", value=0),
            Parameter("episode_timeout_s", value=20.0)],
            **({"cli_args": ["--ros-args", "-r", f"__node:={name}"]} if name else {}))
        node.trigger_configure()
        node.trigger_activate()
        return node

    return lambda: recorder(LateRecorder, None, out_dir), lambda name, folder: recorder(RecorderNode, name, folder)


class Counting:
    """Wraps a recorder node's start so that the test can count the episodes it started."""

    def __init__(self, node):
        self.started = []
        original = node.recorder.start

        def start(text, *args, **kwargs):
            out = original(text, *args, **kwargs)
            if out.started:
                self.started.append(text)
            return out
        node.recorder.start = start


def test_any_client_starts_one_episode_in_every_node_and_a_late_recorder_misses_nothing(tmp_path):
    from std_msgs.msg import String

    from qt_msgs.msg import EpisodeResult
    from qt_policy.nodes.instruction_input import InstructionSender
    from qt_policy.sim.arms import make_arm

    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    procs = {}
    context, node, executor = driver_node("instruction_inputs_test")
    late_recorder, plain_recorder = make_recorders(context, tmp_path / "bags")
    recorder = late_recorder()
    counted = Counting(recorder)
    executor.add_node(recorder)
    results = []
    node.create_subscription(EpisodeResult, "/episode_result", results.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    extra = None

    def spin_until(cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            for name, (proc, _) in procs.items():
                assert proc.poll() is None, f"{name} exited while waiting for {what}\n{logs(procs)}"
            executor.spin_once(timeout_sec=0.05)
        assert cond(), f"timed out after {timeout:g} s waiting for {what}\n{logs(procs)}"

    def count(name, pattern):
        return len(re.findall(pattern, procs[name][1].read_text(errors="replace")))

    def episodes():
        return (count("sim_arm", r"\[sim_arm\]: episode \d+: task"),
                count("policy", r"\[qt_policy\]: instruction: '"), len(counted.started))

    try:
        procs["sim_arm"] = (start_node("qt_policy.nodes.sim_arm_node", {"max_steps": MAX_STEPS}, tmp_path / "sim_arm.log"),
                            tmp_path / "sim_arm.log")
        procs["policy"] = (start_node("qt_policy.nodes.policy_node", {"checkpoint": str(ckpt), "dry_run": True},
                                      tmp_path / "policy.log"), tmp_path / "policy.log")
        # every node's volatile subscription (the one `ros2 topic pub` matches), and the policy configured
        spin_until(lambda: node.count_publishers("/qt/action") > 0 and node.count_subscribers("/instruction") >= 6,
                   60, "the nodes")

        # warm-up: the arm builds each task's simulation at its first instruction (~1.5 s, longer than the
        # recorder's lateness); from now on it resets at once, as a robot starts at once
        warm = InstructionSender(node, "/instruction")
        for k, (text, _) in enumerate(EPISODES):
            warm.send(text)
            spin_until(lambda k=k: len(results) == k + 1, 30, f"warm-up episode {k + 1}")
        del results[:]
        warm.send("")  # stop: a new publisher, an empty text; starts nothing
        node.destroy_publisher(warm._pub)
        counted.started.clear()
        base = episodes()

        # 1. as `ros2 topic pub --once`: waits for ONE matching subscription, publishes, is gone
        pub = publish_once(node, executor, "/instruction", EPISODES[0][0], min_subscriptions=1)
        spin_until(lambda: len(results) == 1, 30, "episode 1's result")
        node.destroy_publisher(pub)

        # 2. as `ros2 topic pub -t 3`: one publisher, the same text three times, one second apart
        pub = node.create_publisher(String, "/instruction", RELIABLE_10)
        spin_until(lambda: pub.get_subscription_count() >= 1, 10, "a match")
        for k in range(3):
            pub.publish(String(data=EPISODES[1][0]))
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
        spin_until(lambda: len(results) == 2, 30, "episode 2's result")
        node.destroy_publisher(pub)

        # 3. a latched publisher (the project's senders: qt-demo, the scripted teleoperator)
        sender = InstructionSender(node, "/instruction")
        sender.send(EPISODES[2][0])
        spin_until(lambda: len(results) == 3, 30, "episode 3's result")

        # 4. a node that starts after the latched instruction was sent hears it once; nobody else again
        extra = plain_recorder("late_started_recorder", tmp_path / "late_started")
        extra_count = Counting(extra)
        executor.add_node(extra)
        spin_until(lambda: extra_count.started, 15, "the late-started recorder's episode")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert extra_count.started == [EPISODES[2][0]]
        assert [n - b for n, b in zip(episodes(), base)] == [3, 3, 3], logs(procs)
    finally:
        stop_nodes([p for p, _ in procs.values()])
        for n in (extra, recorder, node):
            if n is not None:
                executor.remove_node(n)
                n.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)

    arm_log = procs["sim_arm"][1].read_text(errors="replace")
    arm_steps = [int(n) for n in re.findall(r"\[sim_arm\]: episode \d+ \([^)]*\): .*? after (\d+) steps", arm_log)]
    assert [r.instruction for r in results] == [text for text, _ in EPISODES]
    assert [r.num_steps for r in results] == arm_steps[3:6], (results, arm_steps)
    arm = make_arm("metaworld", 64)
    try:
        for result, (text, task) in zip(results, EPISODES):
            episode = read_episode_bag(result.bag_path)
            assert episode.instruction == text and len(episode) == result.num_steps
            arm.reset(task, 1001)  # the sim arm's second episode of each task (after the warm-up): seed 1001
            reset_frame = np.asarray(arm.observation.camera_images[0])
            assert np.array_equal(first_frame(result.bag_path), reset_frame), f"{text}: the bag starts on another frame"
    finally:
        arm.close()


def first_frame(bag_path) -> np.ndarray:
    """The first camera message in the bag, as recorded (not the frames aligned to the actions)."""
    from pathlib import Path

    from rosbags.highlevel import AnyReader

    from qt_policy.data import bag_format as bf
    from qt_policy.codec.images import image_to_rgb

    with AnyReader([Path(bag_path)], default_typestore=bf.get_episode_typestore()) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic == bf.IMAGE_TOPIC:
                msg = reader.deserialize(raw, conn.msgtype)
                return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))
    raise AssertionError(f"{bag_path}: no camera frame")
