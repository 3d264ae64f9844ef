"""The test's side of a policy node process: camera and instruction publishers, recorders of what the
node publishes (with receive times), and waiting on a launched process with its log."""
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

CAMERA_HZ = 30.0  # how often the harness publishes the camera


class Harness:
    """The test's side of the graph: camera + instruction publishers, recorders of the node's output."""

    def __init__(self, ns: str):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64, String

        from qt_msgs.msg import QAction

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('policy_node_test', context=self.context)
        self.ns = ns
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, f'{ns}/camera/image_raw', qos_profile_sensor_data)
        self.instruction_pubs = []  # a new volatile publisher per instruction, as `ros2 topic pub --once`
        self.lock = threading.Lock()
        self.actions, self.twists, self.grippers, self.diags = [], [], [], []
        self.sent_stamps = set()
        self.mode = 'off'  # camera: off | good | bad | old (stamped 1 s in the past)
        self.size = (48, 64)  # (height, width) of 'good' frames
        self._pool = {}
        self.last_good_sent = None
        self.frame_count = 0
        rec = self._recorder
        self.node.create_subscription(QAction, f'{ns}/qt/action', rec(self.actions), reliable)
        self.node.create_subscription(TwistStamped, f'{ns}/servo_node/delta_twist_cmds', rec(self.twists), reliable)
        self.node.create_subscription(Float64, f'{ns}/gripper/command', rec(self.grippers), reliable)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, reliable)
        self.node.create_timer(1.0 / CAMERA_HZ, self._camera_tick)
        self.Image, self.String = Image, String
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:
            pass

    def _recorder(self, store):
        def callback(msg):
            with self.lock:
                store.append((time.monotonic(), msg))
        return callback

    def _on_diag(self, msg):
        for status in msg.status:
            if status.hardware_id == f'{self.ns}/qt_policy':
                with self.lock:
                    self.diags.append((time.monotonic(), {kv.key: kv.value for kv in status.values}))

    def _camera_tick(self):
        mode = self.mode
        if mode == 'off':
            return
        self.frame_count += 1
        msg = self.Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera'
        rng = np.random.default_rng(self.frame_count)
        if mode == 'old':
            msg.header.stamp.sec -= 1
        if mode in ('good', 'old'):
            h, w = self.size
            msg.height, msg.width, msg.encoding = h, w, 'bgr8'
            msg.step = w * 3
            if h * w > 64 * 64:  # big frames: a few pictures in turn (drawing 2.7 MB a tick would load the CPU)
                pool = self._pool.setdefault(self.size, [np.random.default_rng(k).integers(
                    0, 256, h * w * 3, dtype=np.uint8).tobytes() for k in range(4)])
                msg.data = pool[self.frame_count % 4]
            else:
                msg.data = rng.integers(0, 256, h * w * 3, dtype=np.uint8).tobytes()
        else:  # cycle through the malformed cases
            case = self.frame_count % 4
            msg.height, msg.width, msg.encoding, msg.step = 48, 64, 'rgb8', 64 * 3
            if case == 0:
                msg.encoding = 'yuv422_weird'
            elif case == 1:
                msg.step = 64 * 3 - 1
            elif case == 2:
                msg.data = bytes(100)  # truncated
            else:
                msg.height = msg.width = msg.step = 0
            if case != 2 and msg.height:
                msg.data = bytes(msg.step * msg.height)
        self.image_pub.publish(msg)
        if mode in ('good', 'old'):
            with self.lock:
                self.sent_stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
                self.last_good_sent = time.monotonic()

    def instruct(self, text):
        """As `ros2 topic pub --once`: a new volatile publisher, wait for the node's subscription, publish."""
        from qt_policy.dev.topic_pub import publish_once

        # the harness's own thread spins the node
        self.instruction_pubs.append(publish_once(self.node, None, f'{self.ns}/instruction', text))

    def publish_rgb(self, rgb):
        """One rgb8 frame now; returns its stamp (sec, nanosec)."""
        msg = self.Image()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.height, msg.width, msg.encoding, msg.step = rgb.shape[0], rgb.shape[1], 'rgb8', rgb.shape[1] * 3
        msg.data = np.ascontiguousarray(rgb).tobytes()
        self.image_pub.publish(msg)
        return (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def snapshot(self, store, since=0.0):
        with self.lock:
            return [(t, m) for t, m in store if t >= since]

    def latest_diag(self, since=0.0):
        """The newest /diagnostics values received at or after `since` (monotonic), or {}."""
        with self.lock:
            return self.diags[-1][1] if self.diags and self.diags[-1][0] >= since else {}

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)


def wait_for(predicate, timeout, launched, log_path, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert launched.poll() is None, f'node exited while waiting for {what}:\n{tail(log_path)}'
        time.sleep(0.05)
    raise AssertionError(f'timed out after {timeout:g} s waiting for {what}:\n{tail(log_path)}')


def tail(path, n=4000):
    try:
        return Path(path).read_text(errors='replace')[-n:]
    except OSError:
        return ''


def nonzero(twist_msg):
    t = twist_msg.twist
    return any(abs(v) > 0.0 for v in (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))
