"""The recorder node lives through faults: in one process (the logging-severity kill), and as a
separate process on a real small file system that fills and empties, then a SIGKILL mid-episode and
a restart. Bags are read back with rosbags and the mcap library; counts are compared with what was
sent. Every process started here is ended by its own pid.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import serialize_message

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
from qt_policy.data.bag_salvage import find_unfinished
from qt_policy.dev.topic_pub import publish_once
from qt_test_helpers.nodes import lane_domain_id
from qt_test_helpers.recording import mcap_counts, mount_tmpfs

STARTUP_TIMEOUT_S = 60.0
FLUSH_S = 0.5
RATE_HZ = 20.0
MAX_LOST_STEPS = int(FLUSH_S * RATE_HZ) + 2  # a flush period, the step the fault surfaced in, one in flight


@pytest.fixture
def ros_context():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def test_no_log_line_kills_the_node(ros_context, tmp_path, monkeypatch):
    """rclpy raises when one call site logs at two severities: a good bag after a failed one (and the
    reverse) and an empty instruction after a refused one used to kill the node."""
    from std_msgs.msg import String

    from qt_policy.data.bag_writer import EpisodeBagWriter
    from qt_policy.nodes.recorder_node import RecorderNode
    from qt_policy.runtime.instruction_gate import Instruction
    from qt_policy.runtime.recorder_config import EpisodeEnd

    node = RecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path / "bags")),
        Parameter("min_free_disk_mb", value=0)])
    node.trigger_configure()
    node.trigger_activate()
    published = []
    monkeypatch.setattr(node._result_pub, "publish", published.append)
    try:
        def end(bag):
            return EpisodeEnd("e", "x", False, 0.0, 1, "service", bag, 0, 0.0, "" if bag else "finalize failed")
        for bag in ("/a/bag", "", "/b/bag", ""):  # info, error, info, error from the same line
            node._finished(end(bag))
        raw = serialize_message(String(data="open the drawer"))
        real_finalize = EpisodeBagWriter.finalize

        def heard(text):
            now = node.get_clock().now().nanoseconds
            return Instruction(text, now, now)

        def refuse_then_stop(free_mb):
            node.recorder.min_free_disk_mb = free_mb
            node._on_instruction(heard("open the drawer"), raw)
            node._on_instruction(heard(""), serialize_message(String(data="")))
        monkeypatch.setattr(node.recorder, "free_disk_mb", lambda: 10.0)
        refuse_then_stop(1000)  # refused (a result says so), then "stop" with nothing open
        assert published[-1].end_reason == "refused" and "min_free_disk_mb" in published[-1].detail
        refuse_then_stop(0)  # recorded, then stopped: preempted, a bag
        assert published[-1].end_reason == "preempted" and published[-1].bag_path
        monkeypatch.setattr(EpisodeBagWriter, "finalize", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "EIO")))
        refuse_then_stop(0)  # a bag that cannot be finalized after one that could
        assert published[-1].end_reason == "write_error" and published[-1].bag_path == ""
        monkeypatch.setattr(EpisodeBagWriter, "finalize", real_finalize)
        refuse_then_stop(0)  # and the reverse
        assert published[-1].end_reason == "preempted" and published[-1].bag_path
        assert [m.end_reason for m in published[4:]] == ["refused", "preempted", "write_error", "preempted"]
        diagnostics = []
        monkeypatch.setattr(node._diag_pub, "publish", diagnostics.append)
        node._publish_diagnostics()
        values = {kv.key: kv.value for kv in diagnostics[0].status[0].values}
        assert (values["refused"], values["write_failures"], values["state"]) == ("1", "1", "idle")
        assert values["unfinished_to_salvage"]  # the failed one waits for its salvage
        (salvaged,) = node.recorder.salvage_pending(now=1e9)
        # it held only the instruction: nothing to train on, so the folder goes (and the result says so)
        assert (salvaged.bag_path, salvaged.num_steps, salvaged.end_reason) == ("", 0, "write_error")
        assert "no action" in salvaged.detail and node.recorder.unfinished == []
    finally:
        node.destroy_node()


def test_the_recorder_is_a_lifecycle_node(ros_context, tmp_path, monkeypatch):
    """Configured it records nothing; active it records; deactivated it keeps the open episode as a bag
    ('shutdown'); a bad parameter fails configure and the node stays up to say so (/diagnostics)."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from std_msgs.msg import String

    from qt_policy.nodes.recorder_node import RecorderNode
    from qt_policy.runtime.instruction_gate import Instruction

    ok = TransitionCallbackReturn.SUCCESS
    bad = RecorderNode(context=ros_context, parameter_overrides=[Parameter("output_dir", value=" ")])
    try:
        assert bad.trigger_configure() != ok and bad.recorder is None
        assert bad.lifecycle.startswith("configure failed: parameter 'output_dir' is empty")
        assert bad.diagnostics()[:2] == ("error", bad.lifecycle)
    finally:
        bad.destroy_node()
    node = RecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path / "bags")), Parameter("min_free_disk_mb", value=0)])
    raw = serialize_message(String(data="open the drawer"))

    def instruction():
        now = node.get_clock().now().nanoseconds
        node._on_instruction(Instruction("open the drawer", now, now), raw)
    try:
        assert node.trigger_configure() == ok and node.lifecycle == "inactive"
        published = []
        monkeypatch.setattr(node._result_pub, "publish", published.append)
        instruction()
        assert not node.recorder.is_recording  # configured, not active: nothing starts
        assert node.trigger_activate() == ok
        instruction()
        assert node.recorder.is_recording and node.diagnostics()[1].startswith("recording episode_")
        assert node.trigger_deactivate() == ok
        assert [(m.end_reason, bool(m.bag_path)) for m in published] == [("shutdown", True)]
        assert node.trigger_cleanup() == ok and node.recorder is None and node.entities == []
    finally:
        node.destroy_node()


# ------------------------------------------------------------------------------ separate processes
def start_recorder(output_dir: Path, log_path: Path, domain: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "qt_policy.nodes.recorder_node", "--ros-args",
            "-p", f"output_dir:={output_dir}", "-p", "min_free_disk_mb:=0", "-p", f"flush_period_s:={FLUSH_S}",
            "-p", "episode_timeout_s:=0.0", "-p", "disk_check_period_s:=0.5", "-p", "check_period_s:=0.1",
            "-p", "drop_actions_before_start:=false"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, env={**os.environ, "ROS_DOMAIN_ID": domain}, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


class Operator:
    """The robot side of the test: publishes episodes, collects EpisodeResults."""

    def __init__(self, context):
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool, String

        from qt_msgs.msg import EpisodeResult, QAction

        self.Image, self.QAction, self.Bool, self.String = Image, QAction, Bool, String
        self.node = rclpy.create_node(f"fault_operator_{uuid.uuid4().hex[:8]}", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self._instruction_pubs = []  # one volatile publisher per instruction, as `ros2 topic pub --once`
        self.image = self.node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.action = self.node.create_publisher(QAction, "/qt/action", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.success = self.node.create_publisher(Bool, "/success", reliable)
        self.results = []
        self.node.create_subscription(EpisodeResult, "/episode_result", self.results.append, reliable)

    def spin(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for(self, predicate, timeout, what, proc=None, log=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if proc is not None:
                assert proc.poll() is None, f"recorder died while waiting for {what}:\n{log.read_text()[-4000:]}"
            self.executor.spin_once(timeout_sec=0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")

    def episode(self, text, steps, size=8, until=None):
        """Instruction, then `steps` (image, action) pairs at RATE_HZ; returns the steps sent."""
        self._instruction_pubs.append(publish_once(self.node, self.executor, "/instruction", text))
        self.spin(0.3)
        n0 = len(self.results)
        for t in range(steps):
            stamp = self.node.get_clock().now().to_msg()
            img = self.Image(height=size, width=size, encoding="rgb8", step=3 * size,
                             data=np.full(3 * size * size, t % 256, np.uint8).tobytes())
            img.header.stamp = stamp
            self.image.publish(img)
            act = self.QAction(dimension_names=["dx", "dy", "dz", "gripper"], values=[t / 1000.0, 0.0, 0.0, 0.0])
            act.header.stamp = stamp
            self.action.publish(act)
            self.spin(1.0 / RATE_HZ)
            if until is not None and until(self.results[n0:]):
                return t + 1
        return steps

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def stop(proc, sig=signal.SIGINT, timeout=15.0):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def test_recorder_process_through_a_full_disk_and_a_sigkill(tmp_path):
    """One recorder process: a good episode; the disk fills mid-episode (result disk_full, the node
    lives); space comes back (the unfinished bag is salvaged, the next episode records); SIGKILL
    mid-episode; a restart salvages it. Nothing recorded is lost beyond the flush window."""
    mnt = tmp_path / "small"
    mount_tmpfs(mnt, 2048)
    domain = str(lane_domain_id(1))  # its own graph: nothing else on it
    old_domain = os.environ["ROS_DOMAIN_ID"]
    os.environ["ROS_DOMAIN_ID"] = domain
    context = rclpy.context.Context()
    rclpy.init(context=context)
    out = mnt / "bags"
    log = tmp_path / "recorder.log"
    proc = start_recorder(out, log, domain)
    op = Operator(context)
    filler = mnt / "filler"
    try:
        op.wait_for(lambda: op.node.count_subscribers("/instruction") > 0 and op.node.count_publishers(
            "/episode_result") > 0, STARTUP_TIMEOUT_S, "the recorder to start", proc, log)
        op.spin(0.5)
        # 1. a good episode
        op.episode("open the drawer", 10)
        op.success.publish(op.Bool(data=True))
        op.wait_for(lambda: len(op.results) == 1, 10, "result 1", proc, log)
        first = op.results[0]
        assert first.success and first.bag_path and first.num_steps == 10

        # 2. the disk fills during an episode of 64x64 frames
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler.write_bytes(b"\0" * (free - 400 * 1024))
        sent = op.episode("close the drawer", 400, size=64, until=lambda rs: any(r.end_reason == "disk_full" for r in rs))
        op.wait_for(lambda: any(r.end_reason == "disk_full" for r in op.results), 10, "disk_full", proc, log)
        full = next(r for r in op.results if r.end_reason == "disk_full")
        assert full.bag_path == "" and "readable" in full.detail and sent < 400
        assert sent - full.num_steps <= MAX_LOST_STEPS, (sent, full.num_steps)

        # 3. space comes back: the unfinished bag becomes a bag, and the next episode records
        filler.unlink()
        op.wait_for(lambda: any(r.episode_id == full.episode_id and r.bag_path for r in op.results), 15,
                    "the salvaged result", proc, log)
        salvaged = next(r for r in op.results if r.episode_id == full.episode_id and r.bag_path)
        assert salvaged.end_reason == "disk_full" and salvaged.num_steps == full.num_steps
        n = len(op.results)
        op.episode("open the window", 10)
        op.success.publish(op.Bool(data=True))
        op.wait_for(lambda: len(op.results) > n, 10, "result after the disk emptied", proc, log)
        assert op.results[-1].success and op.results[-1].bag_path and op.results[-1].num_steps == 10

        # 4. SIGKILL mid-episode, then a restart salvages what reached the disk
        op.episode("close the window", 30)
        op.spin(2 * FLUSH_S)  # the last chunk reached the disk (timer flush)
        killed = [p.name for p in out.iterdir() if p.name.endswith(bf.PARTIAL_SUFFIX)]
        assert len(killed) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_recorder(out, log, domain)
        name = killed[0][: -len(bf.PARTIAL_SUFFIX)]
        op.wait_for(lambda: (out / name / "metadata.yaml").is_file(), STARTUP_TIMEOUT_S, "the salvage on start",
                    proc, log)
        ep = read_episode_bag(out / name)
        assert (ep.end_reason, ep.success, ep.instruction) == ("interrupted", False, "close the window")
        assert len(ep) == 30  # all of it was flushed before the kill
        assert find_unfinished(out) == []
        bags = list_episode_bags(out)
        assert len(bags) == 4
        for bag in bags:  # two readers agree with each other and with what was sent
            assert mcap_counts(str(bag))[bf.ACTION_TOPIC] == len(read_episode_bag(bag))
    finally:
        rc = stop(proc)
        op.close()
        rclpy.try_shutdown(context=context)
        os.environ["ROS_DOMAIN_ID"] = old_domain
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert rc == 0, log.read_text()[-4000:]
