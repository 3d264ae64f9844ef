"""qt_policy: the Q-Transformer as a ROS 2 lifecycle node.

A thin adapter around `runtime.PolicyRunner`: camera, instruction and state messages go in, and
for the camera frame of each control step (at most the embodiment's `control_rate_hz` a second,
decided as soon as that frame arrives; see PolicyRunner) the node publishes

* qt_msgs/QAction on `action_topic` (header.stamp = stamp of the camera frame the decision used;
  values = the action sent, after the safety limits; terminate from a terminate dimension),
* the robot's commands, as the embodiment file maps them (robot/embodiment.py): a
  geometry_msgs/TwistStamped (linear + angular, MoveIt Servo), a trajectory_msgs/JointTrajectory
  (one point, time_from_start = one control period) or std_msgs/Float64MultiArray of joint
  commands (ros2_control), a std_msgs/Float64 gripper command,

or, when an input is missing or stale, or the hold input says so, one stop command (zero twist,
zero joint velocities) and nothing else until it may act again (a robot that loses its camera
stops). Hold input: service ``~/enable`` (std_srvs/SetBool) and the latched topic `enable_topic`
(std_msgs/Bool); the stop goes out within the callback, i.e. within one tick. The instruction and
enable topics take volatile and latched publishers alike (`ros2 topic pub` with its defaults), and
one publisher repeating the same instruction is one episode (nodes/instruction_input.py).
/diagnostics reports latency, rate, Q, the hold reason and the safety limits that acted.

Threads: the callbacks only note each message's arrival (rmw's received timestamp) and hand it on.
Frame conversion + decision run on one worker thread and instruction encoding on another
(runtime.latest_worker: the newest item wins, no backlog), so a long instruction cannot delay a
frame's decision and a huge frame costs about the decision of its own control step (docs/nodes.md:
a flood of huge frames once made the camera look stale for a moment); the executor stays single-threaded
(rclpy's multi-threaded one busy-waits). The control timer is the stale-input watchdog (and decides
for a model without camera). Staleness is judged on arrival time, and on the header stamp too when
that is on the node's clock.

Lifecycle: configure loads the model (failure -> FAILURE, node stays up), activate starts the
control timer, deactivate stops it and sends a zero twist, cleanup frees the model. With
`autostart` (default) main() configures and activates at startup.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import deque

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from qt_msgs.msg import QAction

from ..data.observation import ImageError, compressed_to_rgb, image_to_rgb
from ..runtime.instruction_gate import Instruction
from ..runtime.latest_worker import LatestWorker
from .parameters import declare_parameters, read_parameters
from ..runtime.policy_config import PolicyNodeConfig
from ..runtime.policy_runner import Action, PolicyRunner
from .command_messages import twist_stamped
from .logs import CallbackFaults
from .instruction_input import subscribe_both_durabilities, subscribe_instructions
from .spin import spin_until_signal

MALFORMED_LOG_PERIOD_S = 10.0
# A header stamp within this of the arrival time is taken to be on our clock (then a frame delayed in
# transport is judged stale by its age); one further off is another clock (sim time, a camera's own) and
# only the arrival time counts.
STAMP_CLOCK_TOLERANCE_S = 10.0
# How long a decision waits for the state taken with its frame (it usually arrives ~1 ms after the frame;
# a state stream that stops is caught by the stale-state hold, not by this wait).
STATE_WAIT_S = 0.02


class PolicyNode(LifecycleNode):
    """Lifecycle wrapper: ROS messages <-> PolicyRunner."""

    def __init__(self, **kwargs):
        super().__init__('qt_policy', **kwargs)
        self._param_errors = declare_parameters(self, PolicyNodeConfig)
        self.config = read_parameters(self, PolicyNodeConfig)
        self.runner: PolicyRunner | None = None
        self._status = 'unconfigured'
        self._entities = []
        self._timer = None
        self._hold = 'inactive'  # hold kind of the last tick; None while acting
        self._hold_reason = 'inactive'
        self._latencies = deque(maxlen=200)
        self._action_times = deque(maxlen=1000)
        self._last_q = float('nan')
        self._actions_published = 0
        self._malformed = 0
        self._malformed_unlogged = 0
        self._malformed_last_log = -1e9
        self._last_image_error = ''
        self._last_state_error = ''
        self._limits_acted: dict[str, int] = {}
        self._pubs: dict[str, object] = {}
        self._out_lock = threading.Lock()  # actions/holds come from the frame worker and the timer
        self.callback_faults = CallbackFaults(self.get_logger())
        self._frames: LatestWorker | None = None  # conversion + decision of the newest frame
        self._other_frames: list[LatestWorker] = []  # one per camera after the first
        self._instructions: LatestWorker | None = None  # encoding of the newest instruction
        # diagnostics run in every lifecycle state: they are how an operator sees a failed configure
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(max(self.config.diagnostics_period_s, 0.05), self._publish_diagnostics)

    # ----- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._param_errors:
                raise ValueError('; '.join(self._param_errors))
            self.config = read_parameters(self, PolicyNodeConfig).validate()
            self.runner = PolicyRunner.from_config(self.config)
        except Exception as exc:  # noqa: BLE001 - report, stay unconfigured, let an operator retry
            self._status = f'configure failed: {exc}'
            self.get_logger().error(f'configure failed: {exc}')
            self.runner = None
            return TransitionCallbackReturn.FAILURE
        cfg, model_cfg, emb = self.config, self.runner.model.cfg, self.runner.embodiment
        cmap = self.runner.commands
        self._action_pub = self.create_lifecycle_publisher(QAction, cfg.action_topic, 10)
        self._entities = [self._action_pub]
        self._pubs = {}
        if cmap.twist_index:
            self._pubs['twist'] = self.create_lifecycle_publisher(TwistStamped, emb.twist.topic, 10)
        if cmap.joint_index:
            kind = JointTrajectory if emb.joints.type == 'joint_trajectory' else Float64MultiArray
            self._pubs['joints'] = self.create_lifecycle_publisher(kind, emb.joints.topic, 10)
        if cmap.gripper_index is not None:
            self._pubs['gripper'] = self.create_lifecycle_publisher(Float64, emb.gripper.topic, 10)
        self._entities += list(self._pubs.values())
        self._frames = LatestWorker(self._process_frame, 'policy-frames', self.callback_faults.report)
        self._instructions = LatestWorker(self._encode_instruction, 'policy-instruction', self.callback_faults.report)
        self._entities += subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        self._entities += subscribe_both_durabilities(self, Bool, cfg.enable_topic,
                                                      lambda msg, _info: self._on_enable_topic(msg))
        self._entities.append(self.create_service(SetBool, '~/enable', self._on_enable_service))
        if self.runner.needs_camera:
            # camera 0 drives the decisions; every other camera has its own worker, so that its frames
            # never replace a first-camera frame waiting to be processed
            self._other_frames = [LatestWorker(self._process_other_frame, f'policy-camera-{k}',
                                               self.callback_faults.report)
                                  for k in range(1, self.runner.num_cameras)]
            for k, camera in enumerate(emb.cameras[:self.runner.num_cameras]):
                worker = self._frames if k == 0 else self._other_frames[k - 1]
                kind = CompressedImage if camera.compressed else Image
                self._entities.append(self.create_subscription(
                    kind, camera.topic, lambda msg, info, w=worker, k=k: w.put((msg, self._arrival(info), k)),
                    qos_profile_sensor_data))
        if self.runner.needs_state:
            self._entities.append(self.create_subscription(JointState, emb.state.topic, self._on_state,
                                                           qos_profile_sensor_data))
        if self.runner.safety.has_box:
            self._entities.append(self.create_subscription(PoseStamped, emb.workspace.pose_topic, self._on_pose,
                                                           qos_profile_sensor_data))
        self._status = 'inactive'
        self.get_logger().info(
            f'configured: {cfg.checkpoint} for embodiment {emb.name!r} ({model_cfg.action_dim} dims '
            f'{list(self.runner.names)} -> {", ".join(sorted(self._pubs)) or "QAction only"}, '
            f'{model_cfg.image_size}px x {model_cfg.frames} frames, state_dim {model_cfg.state_dim}), '
            f'{cfg.backend}{" on " + cfg.device if cfg.backend == "torch" else ""}, '
            f'{emb.control_rate_hz:g} Hz{", dry run" if cfg.dry_run else ""}'
            f'{"" if self.runner.enabled else ", DISABLED until enabled"}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self._hold, self._hold_reason = 'activated', 'activated'
        self._timer = self.create_timer(self.runner.period_s, self._tick)
        self._status = 'active'
        self.get_logger().info('activated')
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        self._publish_stop()  # while the publishers are still enabled
        self._hold, self._hold_reason, self._status = 'inactive', 'inactive', 'inactive'
        self.get_logger().info('deactivated' if self.config.dry_run else 'deactivated (stop command sent)')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        self._status = 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._timer is not None:
            self._stop_timer()
            self._publish_stop()
        self._free()
        self._status = 'finalized'
        return super().on_shutdown(state)

    def _stop_timer(self):
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _free(self):
        for worker in [self._frames, self._instructions] + self._other_frames:
            if worker is not None:
                worker.stop()
        self._frames = self._instructions = None
        self._other_frames = []
        for entity in self._entities:
            if hasattr(entity, 'publish'):
                self.destroy_lifecycle_publisher(entity)
            elif hasattr(entity, 'srv_type'):
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []
        self._pubs = {}
        self.runner = None

    # ----- inputs --------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_instruction(self, instruction: Instruction, _raw: bytes):
        now = self._now()
        sent = instruction.sent_ns * 1e-9
        # when it was sent, if on this node's clock (a latched one from long ago, or sim time: unknown)
        self._instructions.put((instruction.text, now, sent if abs(now - sent) <= STAMP_CLOCK_TOLERANCE_S else None))

    def _encode_instruction(self, item):
        """On the instruction worker: a long text is encoded without holding up frames or the timer."""
        text, arrival, sent = item
        runner = self.runner
        if runner is None:
            return
        try:
            runner.set_instruction(text, arrival, sent)
        except Exception as exc:  # noqa: BLE001 - a bad instruction must not kill the node
            self.get_logger().error(f'cannot encode instruction {text[:200]!r}: {exc}')
            return
        shown = runner.instruction if len(runner.instruction) <= 200 else runner.instruction[:200] + '...'
        self.get_logger().info(f'instruction: {shown!r}' if runner.instruction else 'instruction cleared: holding')

    def _arrival(self, info) -> float:
        """When the message arrived (rmw's received timestamp), not when its callback got to run."""
        received = (info or {}).get('received_timestamp', 0) if isinstance(info, dict) else 0
        return received * 1e-9 if received > 0 else self._now()

    def _stamp_s(self, header, arrival: float) -> float | None:
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        return stamp if abs(arrival - stamp) <= STAMP_CLOCK_TOLERANCE_S else None

    def _add_frame(self, runner, item) -> bool:
        """Convert one camera message and hand it to the runner; False (and a throttled warning) when malformed."""
        msg, arrival, camera = item
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(msg.format, msg.data)
            else:
                rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))
            runner.add_image(rgb, arrival, msg.header, self._stamp_s(msg.header, arrival), camera=camera)
        except ImageError as exc:
            self._malformed_image(exc)
            return False
        return True

    def _process_other_frame(self, item):
        """On a camera's worker (cameras after the first): convert and keep it for the next decision."""
        runner = self.runner
        if runner is not None:
            self._add_frame(runner, item)

    def _process_frame(self, item):
        """On the frame worker: convert, and decide if it is the frame of the next control step."""
        arrival = item[1]
        runner = self.runner
        if runner is None or not self._add_frame(runner, item):
            return
        if self._timer is None or not runner.on_frame(arrival):
            return  # inactive, or a frame between two control steps
        runner.wait_for_state(STATE_WAIT_S)  # the state taken with this frame may arrive just after it
        self._handle(runner.act(self._now()))

    def _malformed_image(self, exc: Exception):
        """Drop the frame; one warning, then at most one summary every MALFORMED_LOG_PERIOD_S."""
        self._malformed += 1
        self._malformed_unlogged += 1
        self._last_image_error = str(exc)
        now = time.monotonic()
        if now - self._malformed_last_log >= MALFORMED_LOG_PERIOD_S:
            self.get_logger().warning(f'dropping malformed camera image(s) ({self._malformed_unlogged} since last '
                                   f'warning, {self._malformed} total): {exc}')
            self._malformed_last_log, self._malformed_unlogged = now, 0

    def _on_enable_topic(self, msg: Bool):
        self._set_enabled(bool(msg.data), f'topic {self.resolve_topic_name(self.config.enable_topic)}')

    def _on_enable_service(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._set_enabled(bool(request.data), 'service ~/enable')
        response.success, response.message = True, 'enabled' if request.data else 'disabled: holding'
        return response

    def _set_enabled(self, enabled: bool, source: str):
        runner = self.runner
        if runner is None:
            return
        was = runner.enabled
        runner.set_enabled(enabled)
        if not enabled:
            self._handle(runner.check(self._now()))  # the stop command goes out now, not at the next tick
        if was != enabled:
            self.get_logger().warning(f'{"enabled" if enabled else "DISABLED (holding)"} by {source}')

    def _on_pose(self, msg: PoseStamped, info):
        p = msg.pose.position
        try:
            self.runner.set_ee_position((p.x, p.y, p.z), self._arrival(info))
        except ValueError as exc:
            self.get_logger().warning(f'dropping end-effector pose: {exc}')

    def _on_state(self, msg: JointState, info):
        arrival = self._arrival(info)
        try:
            state = self.runner.embodiment.state.extract(msg.name, position=msg.position, velocity=msg.velocity,
                                                         effort=msg.effort)
            self.runner.set_state(state, arrival, self._stamp_s(msg.header, arrival))
        except ValueError as exc:
            if self._last_state_error != str(exc):  # one line per distinct problem, not per message
                spec = self.runner.embodiment.state
                self.get_logger().warning(
                    f'dropping robot state: {exc}; expected a JointState with {"/".join(spec.fields)} of the joints '
                    f'named {spec.joints} (embodiment {self.runner.embodiment.name!r}, its state: entry); holding')
            self._last_state_error = str(exc)

    # ----- control tick --------------------------------------------------------------------------

    def _tick(self):
        """The watchdog: a stale or missing input holds the robot even when no frame arrives. A model
        without camera decides here, once per tick."""
        runner = self.runner
        if runner is None:
            return
        now = self._now()
        if not runner.needs_camera:
            self._handle(runner.act(now))
            return
        hold = runner.check(now)
        if hold is not None:
            self._handle(hold)

    def _handle(self, result):
        with self._out_lock:
            if isinstance(result, Action):
                if self.runner is None or not self.runner.enabled:  # disabled while it ran: the stop went out
                    return
                if self._hold is not None:
                    self.get_logger().info(f'acting (was holding: {self._hold_reason})')
                self._hold, self._hold_reason = None, ''
                self._publish_action(result)
                return
            if result.kind != self._hold:
                self.get_logger().warning(f'holding: {result.reason}')
                self._publish_stop()
                if self.runner is not None:
                    self.runner.hold_released()
            self._hold, self._hold_reason = result.kind, result.reason

    def _publish_action(self, action: Action):
        msg = QAction()
        if action.image_stamp is not None:
            msg.header.stamp = action.image_stamp.stamp
            msg.header.frame_id = action.image_stamp.frame_id
        else:
            msg.header.stamp = self.get_clock().now().to_msg()
        msg.instruction = action.instruction
        msg.dimension_names = list(action.names)
        msg.values = [float(v) for v in action.values]
        msg.bins = [int(b) for b in action.bins]
        msg.q_value = float(action.q_value)
        msg.terminate = action.terminate
        self._action_pub.publish(msg)
        self._latencies.append(action.latency_ms)
        self._action_times.append(time.monotonic())
        self._last_q = action.q_value
        self._actions_published += 1
        for name in action.limited:
            self._limits_acted[name] = self._limits_acted.get(name, 0) + 1
        if self.config.dry_run or action.command is None:
            return
        self._publish_command(action.command)
        if action.terminate:
            self.get_logger().info('the policy chose terminate: stopping until the next instruction')
            self._publish_stop()

    def _publish_command(self, command):
        """RobotCommand -> the embodiment's messages (robot/commands.py groups the values)."""
        if 'twist' in self._pubs:
            self._pubs['twist'].publish(self._twist(command.linear, command.angular))
        if 'joints' in self._pubs and command.joints is not None:
            self._pubs['joints'].publish(self._joint_msg(command.joint_names, command.joints))
        if 'gripper' in self._pubs and command.gripper is not None:
            self._pubs['gripper'].publish(Float64(data=float(command.gripper)))

    def _joint_msg(self, names, values):
        values = [float(v) for v in values]
        if self.runner.embodiment.joints.type == 'float64_multi_array':
            return Float64MultiArray(data=values)
        msg = JointTrajectory()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.joint_names = list(names)
        point = JointTrajectoryPoint()
        if self.runner.commands.joint_kind == 'joint_velocity':
            point.velocities = values
        else:
            point.positions = values
        sec, nsec = divmod(int(round(self.runner.period_s * 1e9)), 1_000_000_000)
        point.time_from_start.sec, point.time_from_start.nanosec = sec, nsec
        msg.points = [point]
        return msg

    def _twist(self, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> TwistStamped:
        frame_id = self.runner.embodiment.twist.frame_id if self.runner else ''
        return twist_stamped(self.get_clock().now().to_msg(), frame_id, linear, angular)

    def _publish_stop(self):
        """Zero velocity: a zero twist and zero joint velocities (position targets are left as they are:
        the controller holds the last one)."""
        if self.runner is None or self.config.dry_run or not self._pubs:
            return
        if 'twist' in self._pubs:
            self._pubs['twist'].publish(self._twist())
        cmap = self.runner.commands
        if 'joints' in self._pubs and cmap.joint_kind == 'joint_velocity':
            self._pubs['joints'].publish(self._joint_msg(cmap.joint_names, [0.0] * len(cmap.joint_names)))

    # ----- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self):
        now = time.monotonic()
        window = [t for t in self._action_times if now - t <= 5.0]
        rate = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 2 and window[-1] > window[0] else 0.0
        if self._status != 'active':
            level, state = DiagnosticStatus.ERROR if 'failed' in self._status else DiagnosticStatus.WARN, self._status
        elif self._hold is None:
            level, state = DiagnosticStatus.OK, 'acting'
        else:
            level, state = DiagnosticStatus.WARN, f'holding: {self._hold_reason}'
        values = {
            'state': state,
            'lifecycle': self._status,
            'instruction': self.runner.instruction if self.runner else '',
            'decode_latency_p50_ms': f'{statistics.median(self._latencies):.2f}' if self._latencies else 'nan',
            'achieved_rate_hz': f'{rate:.2f}',
            'control_rate_hz': f'{self.runner.embodiment.control_rate_hz:g}' if self.runner else 'nan',
            'embodiment': self.runner.embodiment.name if self.runner else '',
            'backend': self.config.backend,
            'enabled': str(self.runner.enabled).lower() if self.runner else 'false',
            'q_floor': f'{self.config.q_floor:g}',
            'safety_limits_acted': ' '.join(f'{k}={v}' for k, v in sorted(self._limits_acted.items())),
            'last_q': f'{self._last_q:.4f}',
            'actions_published': str(self._actions_published),
            'malformed_images': str(self._malformed),
            'frames_skipped_busy': str(self._frames.dropped if self._frames else 0),
            'callback_failures': str(self.callback_faults.total),
            'last_image_error': self._last_image_error,
            'last_state_error': self._last_state_error,
        }
        status = DiagnosticStatus(level=level, name=f'{self.get_fully_qualified_name()}: policy',
                                  hardware_id=self.get_fully_qualified_name(), message=state,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def main(args=None) -> int:
    """Spin until SIGINT/SIGTERM, then deactivate (zero twist) and shut down cleanly."""
    def start(node):
        if node.config.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()

    def stop(node, executor):
        if node._status == 'active':
            node.trigger_deactivate()

    return spin_until_signal('qt_policy', PolicyNode, args, on_start=start, on_stop=stop)


if __name__ == '__main__':
    main()
