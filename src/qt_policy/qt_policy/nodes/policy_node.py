"""qt_policy: the Q-Transformer as a ROS 2 lifecycle node.

A thin adapter around `runtime.PolicyRunner`: camera, instruction and state messages go in, and
for the camera frame of each control step (at most the embodiment's `control_rate_hz` a second,
decided as soon as that frame arrives; see PolicyRunner) the node publishes

* qt_msgs/QAction on `action_topic` (header.stamp = stamp of the camera frame the decision used;
  values = the action sent, after the safety limits; terminate from a terminate dimension),
* the robot's commands, as the embodiment file maps them (nodes/command_messages.py: TwistStamped
  for MoveIt Servo, JointTrajectory or Float64MultiArray joints for ros2_control, a Float64 gripper),

or, when an input is missing or stale, or the hold input says so, one stop command (zero twist,
zero joint velocities) and nothing else until it may act again (a robot that loses its camera
stops). Hold input: service ``~/enable`` (std_srvs/SetBool) and the latched topic `enable_topic`
(std_msgs/Bool); the stop goes out within the callback, i.e. within one tick. The instruction and
enable topics take volatile and latched publishers alike (`ros2 topic pub` with its defaults), and
one publisher repeating the same instruction is one episode (nodes/instruction_input.py).
/diagnostics reports latency, rate, Q, the hold reason and the safety limits that acted.

Threads: callbacks note each message's arrival and hand it on; decisions run on a frame worker and
instruction encoding on another (runtime.latest_worker: the newest item wins; docs/nodes.md says why).
The control timer is the stale-input watchdog (and decides for a model without camera); staleness is
judged on arrival time, and on the header stamp when that is on the node's clock (codec/stamps.py).

Lifecycle: configure loads the model (failure -> FAILURE, node stays up), activate starts the
control timer, deactivate stops it and sends a zero twist, cleanup frees the model. With
`autostart` (default) main() configures and activates at startup.
"""
from __future__ import annotations

import threading
import time

import numpy as np

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from qt_msgs.msg import QAction

from ..codec.stamps import arrival_seconds, on_our_clock, stamp_to_ns
from ..codec.actions import qaction_fields
from ..codec.images import ImageError, image_msg_to_rgb
from ..runtime.instruction_gate import Instruction
from ..runtime.latest_worker import LatestWorker
from ..runtime.policy_config import PolicyNodeConfig
from ..runtime.decision import Action
from ..runtime.policy_runner import PolicyRunner
from ..runtime.help_signal import HelpSignal, load_calibration
from ..runtime.policy_status import PolicyStatus
from .command_messages import CommandPublishers
from .managed_node import ManagedNode, run
from .instruction_input import subscribe_both_durabilities, subscribe_instructions
from .operator_input import subscribe_operator
from .qos import LATCHED

MALFORMED_LOG_PERIOD_S = 10.0
# How long a decision waits for the state taken with its frame (it usually arrives ~1 ms after the frame;
# a state stream that stops is caught by the stale-state hold, not by this wait).
STATE_WAIT_S = 0.02


class PolicyNode(ManagedNode):
    """Lifecycle wrapper: ROS messages <-> PolicyRunner."""

    role = 'policy'

    def __init__(self, **kwargs):
        super().__init__('qt_policy', PolicyNodeConfig, **kwargs)
        self.runner: PolicyRunner | None = None
        self._timer = None
        self.status = PolicyStatus(MALFORMED_LOG_PERIOD_S)  # acting or holding, latency, rate, Q, limits, dropped inputs
        self._commands: CommandPublishers | None = None  # the robot's command topics
        self._out_lock = threading.Lock()  # actions/holds come from the frame worker and the timer
        self._frames: LatestWorker | None = None  # conversion + decision of the newest frame
        self._other_frames: list[LatestWorker] = []  # one per camera after the first
        self._instructions: LatestWorker | None = None  # encoding of the newest instruction

    # ----- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = self.read_config()
            self.runner = PolicyRunner.from_config(self.config)
        except Exception as exc:  # noqa: BLE001 - report, stay unconfigured, let an operator retry
            self.runner = None
            return self.configure_failed(exc)
        cfg, model_cfg, emb = self.config, self.runner.model.cfg, self.runner.embodiment
        cmap = self.runner.commands
        self._action_pub = self.create_lifecycle_publisher(QAction, cfg.action_topic, 10)
        self.entities = [self._action_pub]
        self._commands = CommandPublishers(self.create_lifecycle_publisher, emb, cmap, self.runner.period_s)
        self.entities += list(self._commands.pubs.values())
        self._frames = LatestWorker(self._process_frame, 'policy-frames', self.callback_faults.report)
        self._instructions = LatestWorker(self._encode_instruction, 'policy-instruction', self.callback_faults.report)
        self.entities += subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        self.entities += subscribe_both_durabilities(self, Bool, cfg.enable_topic,
                                                      lambda msg, _info: self._on_enable_topic(msg))
        self.entities.append(self.create_service(SetBool, '~/enable', self._on_enable_service))
        if self.runner.needs_camera:
            # camera 0 drives the decisions; every other camera has its own worker, so that its frames
            # never replace a first-camera frame waiting to be processed
            self._other_frames = [LatestWorker(self._process_other_frame, f'policy-camera-{k}',
                                               self.callback_faults.report)
                                  for k in range(1, self.runner.num_cameras)]
            for k, camera in enumerate(emb.cameras[:self.runner.num_cameras]):
                worker = self._frames if k == 0 else self._other_frames[k - 1]
                kind = CompressedImage if camera.compressed else Image
                self.entities.append(self.create_subscription(
                    kind, camera.topic, lambda msg, info, w=worker, k=k: w.put((msg, self._arrival(info), k)),
                    qos_profile_sensor_data))
        if self.runner.needs_state:
            self.entities.append(self.create_subscription(JointState, emb.state.topic, self._on_state,
                                                           qos_profile_sensor_data))
        if self.runner.safety.has_box:
            self.entities.append(self.create_subscription(PoseStamped, emb.workspace.pose_topic, self._on_pose,
                                                           qos_profile_sensor_data))
        self.entities += subscribe_operator(self, cfg, self.runner, self._now)
        self._source = 'policy'
        self._help = HelpSignal(cfg.help_threshold, cfg.help_ticks,
                                load_calibration(cfg.help_calibration) if cfg.help_calibration else None)
        self._help_pub = self.create_lifecycle_publisher(Bool, cfg.help_topic, LATCHED)
        self.entities.append(self._help_pub)
        self.lifecycle = 'inactive'
        self.get_logger().info(
            f'configured: {cfg.checkpoint} for embodiment {emb.name!r} ({model_cfg.action_dim} dims '
            f'{list(self.runner.names)} -> {", ".join(sorted(self._commands.pubs)) or "QAction only"}, '
            f'{model_cfg.image_size}px x {model_cfg.frames} frames, state_dim {model_cfg.state_dim}), '
            f'{cfg.backend}{" on " + cfg.device if cfg.backend == "torch" else ""}, '
            f'{emb.control_rate_hz:g} Hz{", dry run" if cfg.dry_run else ""}'
            f'{"" if self.runner.enabled else ", DISABLED until enabled"}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self.status.held('activated', 'activated')
        self._timer = self.create_timer(self.runner.period_s, self._tick)
        self.lifecycle = 'active'
        self.get_logger().info('activated')
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timer()
        self._publish_stop()  # while the publishers are still enabled
        self.status.held('inactive', 'inactive')
        self.lifecycle = 'inactive'
        self.get_logger().info('deactivated' if self.config.dry_run else 'deactivated (stop command sent)')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        self.lifecycle = 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._timer is not None:
            self._stop_timer()
            self._publish_stop()
        self._free()
        self.lifecycle = 'finalized'
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
        self.destroy_entities()
        self._commands = None
        self.runner = None

    # ----- inputs --------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_instruction(self, instruction: Instruction, _raw: bytes):
        now = self._now()
        # when it was sent, if on this node's clock (a latched one from long ago, or sim time: unknown)
        self._instructions.put((instruction.text, now, on_our_clock(instruction.sent_ns * 1e-9, now)))

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
        self._ask_for_help(self._help.reset())  # a new episode
        shown = runner.instruction if len(runner.instruction) <= 200 else runner.instruction[:200] + '...'
        self.get_logger().info(f'instruction: {shown!r}' if runner.instruction else 'instruction cleared: holding')

    def _arrival(self, info) -> float:
        return arrival_seconds(info, self._now())

    @staticmethod
    def _stamp_s(header, arrival: float) -> float | None:
        return on_our_clock(stamp_to_ns(header.stamp) * 1e-9, arrival)

    def _add_frame(self, runner, item) -> bool:
        """Convert one camera message and hand it to the runner; False (and a throttled warning) when malformed."""
        msg, arrival, camera = item
        try:
            runner.add_image(image_msg_to_rgb(msg), arrival, msg.header, self._stamp_s(msg.header, arrival), camera=camera)
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
        line = self.status.malformed_image(exc, time.monotonic())
        if line:
            self.get_logger().warning(line)

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
            if self.status.last_state_error != str(exc):  # one line per distinct problem, not per message
                spec = self.runner.embodiment.state
                self.get_logger().warning(
                    f'dropping robot state: {exc}; expected a JointState with {"/".join(spec.fields)} of the joints '
                    f'named {spec.joints} (embodiment {self.runner.embodiment.name!r}, its state: entry); holding')
            self.status.last_state_error = str(exc)

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
                ended = self.status.acted(result)
                if ended is not None:
                    self.get_logger().info(f'acting (was holding: {ended})')
                self._publish_action(result)
                return
            if self.status.held(result.kind, result.reason):
                self.get_logger().warning(f'holding: {result.reason}')
                self._publish_stop()
                if self.runner is not None:
                    self.runner.hold_released()

    def _publish_action(self, action: Action):
        if action.source != self._source:  # the operator took over, or handed back
            self.get_logger().info('operator drives' if action.source == 'operator' else 'the policy drives again')
            self._source = action.source
        self._ask_for_help(self._help.update(action.q_value) if action.source == 'policy' else self._help.reset())
        msg = QAction()
        if action.image_stamp is not None:
            msg.header.stamp = action.image_stamp.stamp
            msg.header.frame_id = action.image_stamp.frame_id
        else:
            msg.header.stamp = self.get_clock().now().to_msg()
        for name, value in qaction_fields(action.values, action.names, action.bins, action.q_value, action.terminate,
                                          action.instruction, action.source, action.source == 'operator').items():
            setattr(msg, name, value.tolist() if isinstance(value, np.ndarray) else value)
        self._action_pub.publish(msg)
        if self.config.dry_run or action.command is None:
            return
        self._publish_command(action.command)
        if action.terminate:
            self.get_logger().info('the policy chose terminate: stopping until the next instruction')
            self._publish_stop()

    def _ask_for_help(self, needed: bool | None):
        """Publish the help signal when it changes (runtime/help_signal.py)."""
        if needed is None:
            return
        self._help_pub.publish(Bool(data=needed))
        self.get_logger().warning(f'asking for help: success estimate {self._help.estimate:.2f} below '
                                  f'{self._help.threshold:g} for {self._help.ticks} decisions' if needed
                                  else 'help no longer needed')

    def _publish_command(self, command):
        self._commands.publish(command, self.get_clock().now().to_msg())

    def _publish_stop(self):
        """Zero velocity (robot/commands.py: position targets are left as they are)."""
        if self.runner is not None and not self.config.dry_run and self._commands is not None:
            self._commands.stop(self.get_clock().now().to_msg())

    # ----- diagnostics ---------------------------------------------------------------------------

    def diagnostics(self):
        level, state = self.status.state(self.lifecycle)
        runner = self.runner
        return level, state, {
            **self.status.diagnostics(self.lifecycle),
            'instruction': runner.instruction if runner else '',
            'control_rate_hz': f'{runner.embodiment.control_rate_hz:g}' if runner else 'nan',
            'embodiment': runner.embodiment.name if runner else '',
            'backend': self.config.backend,
            'enabled': str(runner.enabled).lower() if runner else 'false',
            'q_floor': f'{self.config.q_floor:g}',
            'frames_skipped_busy': str(self._frames.dropped if self._frames else 0),
        }


def main(args=None) -> int:
    """Spin until SIGINT/SIGTERM, then deactivate (zero twist) and shut down cleanly."""
    def stop(node, executor):
        if node.lifecycle == 'active':
            node.trigger_deactivate()

    return run('qt_policy', PolicyNode, args, on_stop=stop)


if __name__ == '__main__':
    main()
