"""qt_recorder: records one rosbag2 episode bag per instruction (the robot's training data).

A thin adapter around `runtime.episode_recorder.EpisodeRecorder` (see its docstring for the rules):

* subscriptions with ``raw=True`` (the CDR bytes go into the bag untouched): the embodiment's camera
  (Image or CompressedImage, SensorDataQoS; raw frames optionally compressed, ``image_format``) and
  robot state JointState (SensorDataQoS), the instruction std_msgs/String (from any reliable
  publisher, latched or not: a new instruction starts an episode, recorded from when it was sent,
  with the pre-roll of what arrived before this node heard it), and the actions: with ``action_source``
  ``policy`` the policy's qt_msgs/QAction (reliable, depth 10); with ``teleop`` the embodiment's
  command topics a teleoperator drives (TwistStamped, JointTrajectory / Float64MultiArray, Float64
  gripper), turned into one QAction per control step (robot/teleop_steps.py);
* std_msgs/Bool on ``success_topic``: True ends the episode as a success, False as a failure
  (end_reason ``success_topic``); ignored before the episode's first action (a late message about the
  previous episode);
* service ``~/end_episode`` (qt_msgs/srv/EndEpisode): ends it with the requested label (``service``);
* a timer for the episode timeout and the free-disk check;
* after every episode: qt_msgs/EpisodeResult on ``result_topic`` (reliable, depth 10) and one log line
  -- also for an instruction that could not be recorded (end_reason ``refused``) and for every
  unfinished bag salvaged (at start-up, and once the disk has room again after a write error);
* ``/diagnostics`` every ``diagnostics_period_s``: recording or idle, free disk, episodes, refusals,
  write failures, salvaged bags, failed callbacks.

SIGINT/SIGTERM: an open episode is finalized as a failure with end_reason ``shutdown`` before exit.
SIGKILL, a crash or a full disk: at most ``flush_period_s`` of the open episode is lost; the rest
becomes a bag at the next start (docs/nodes.md, "What survives what").

    python -m qt_policy.nodes.recorder_node --ros-args --params-file config/recorder.yaml
"""
from __future__ import annotations

import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from qt_msgs.msg import EpisodeResult, QAction
from qt_msgs.srv import EndEpisode

from ..data import bag_format as bf
from ..runtime.episode_recorder import EpisodeRecorder, RecordError
from ..runtime.recorder_config import EpisodeEnd, RecorderNodeConfig
from ..runtime.instruction_gate import Instruction
from .parameters import declare_parameters, read_parameters
from .instruction_input import subscribe_instructions
from .logs import CallbackFaults, log_at
from .qos import RELIABLE_10
from .spin import spin_until_signal

ERROR_LOG_PERIOD_S = 10.0


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__('qt_recorder', **kwargs)
        errors = declare_parameters(self, RecorderNodeConfig)
        if errors:
            raise ValueError('; '.join(errors))
        self.config = read_parameters(self, RecorderNodeConfig).validate()
        cfg = self.config
        self.callback_faults = CallbackFaults(self.get_logger())
        self._error_counts: dict[str, int] = {}
        self._error_last: dict[str, float] = {}
        self._result_pub = self.create_publisher(EpisodeResult, cfg.result_topic, RELIABLE_10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.recorder = EpisodeRecorder.from_config(cfg, log=self._log)
        for end in self.recorder.salvage_pending(time.monotonic(), scan=True):  # what a crash left
            self._finished(end)

        emb = self.recorder.embodiment
        subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        for k, camera in enumerate(emb.cameras):  # camera k -> the bag's bf.image_topic(k)
            kind, msgtype = (CompressedImage, bf.COMPRESSED_IMAGE_TYPE) if camera.compressed else (Image, bf.IMAGE_TYPE)
            self.create_subscription(kind, camera.topic, self._raw_cb(bf.image_topic(k, camera.compressed), msgtype),
                                     qos_profile_sensor_data, raw=True)
        if emb.state.topic.strip():
            self.create_subscription(JointState, emb.state.topic, self._raw_cb(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE),
                                     qos_profile_sensor_data, raw=True)
        sources = self._subscribe_actions(cfg, emb)
        self.create_subscription(Bool, cfg.success_topic, self._on_success, RELIABLE_10)
        self.create_service(EndEpisode, '~/end_episode', self._on_end_episode)
        self.create_timer(cfg.check_period_s, self._on_timer)
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(
            f'recording {emb.name!r} to {self.recorder.output_dir.resolve()} (timeout {cfg.episode_timeout_s:g} s, '
            f'min free disk {cfg.min_free_disk_mb} MB); instruction on {self._topic(cfg.instruction_topic)}; '
            f'actions from {", ".join(sources)}')

    def _subscribe_actions(self, cfg, emb) -> list[str]:
        """The policy's QAction, or (teleop) the robot's command topics; returns the topic names."""
        if cfg.action_source == 'policy':
            self.create_subscription(QAction, cfg.action_topic, self._raw_cb(bf.ACTION_TOPIC, bf.QACTION_TYPE),
                                     RELIABLE_10, raw=True)
            return [self._topic(cfg.action_topic)]
        cmap, sources = self.recorder.teleop.map, []
        if cmap.twist_index:
            self.create_subscription(TwistStamped, emb.twist.topic,
                                     self._command_cb('twist', bf.TWIST_STAMPED_TYPE), RELIABLE_10, raw=True)
            sources.append(self._topic(emb.twist.topic))
        if cmap.joint_index:
            joint_type, joint_msg = ((bf.JOINT_TRAJECTORY_TYPE, JointTrajectory) if emb.joints.type == 'joint_trajectory'
                                     else (bf.FLOAT64_MULTI_ARRAY_TYPE, Float64MultiArray))
            self.create_subscription(joint_msg, emb.joints.topic, self._command_cb('joints', joint_type),
                                     RELIABLE_10, raw=True)
            sources.append(self._topic(emb.joints.topic))
        if cmap.gripper_index is not None:
            self.create_subscription(Float64, emb.gripper.topic, self._command_cb('gripper', bf.FLOAT64_TYPE),
                                     RELIABLE_10, raw=True)
            sources.append(self._topic(emb.gripper.topic))
        return sources or ['(no command topic: the embodiment maps no dimension to a command)']

    # ----- helpers -------------------------------------------------------------------------------

    def _topic(self, name: str) -> str:
        return self.resolve_topic_name(name)

    def _log(self, level: str, message: str) -> None:
        log_at(self.get_logger(), level, message)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _report_error(self, key: str, message: str) -> None:
        """One line per kind of problem, then at most one summary every ERROR_LOG_PERIOD_S."""
        self._error_counts[key] = self._error_counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self._error_last.get(key, -1e9) >= ERROR_LOG_PERIOD_S:
            self.get_logger().warning(f'{message} ({self._error_counts[key]} so far)')
            self._error_last[key] = now

    def _finished(self, end: EpisodeEnd | None) -> None:
        if end is None:
            return
        msg = EpisodeResult()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(end.stamp_ns, 1_000_000_000)
        msg.episode_id = end.episode_id
        msg.instruction = end.instruction
        msg.success = end.success
        msg.reward = float(end.reward)
        msg.num_steps = int(end.num_steps)
        msg.end_reason = end.end_reason
        msg.bag_path = end.bag_path
        msg.detail = end.detail
        self._result_pub.publish(msg)
        line = (f'episode {end.episode_id or "(none)"} {end.instruction!r}: success={end.success} '
                f'steps={end.num_steps} reason={end.end_reason} ({end.duration_s:.1f} s) '
                f'bag {end.bag_path or "NOT WRITTEN"}' + (f' -- {end.detail}' if end.detail else ''))
        log_at(self.get_logger(), 'info' if end.bag_path else 'error', line)

    # ----- callbacks -----------------------------------------------------------------------------

    def _on_instruction(self, instruction: Instruction, raw: bytes) -> None:
        text = instruction.text
        out = self.recorder.start(text, time.monotonic(), instruction.received_ns, raw_instruction=raw,
                                  sent_ns=instruction.sent_ns)
        self._finished(out.ended)
        if out.started:
            late = (instruction.received_ns - instruction.sent_ns) / 1e9
            self.get_logger().info(f'episode {out.episode_id} started: {text!r} -> {out.partial_path}'
                                   + (f' (heard {late:.2f} s after it was sent; {out.replayed} earlier messages '
                                      f'from the pre-roll)' if out.replayed else ''))
            self._finished(out.ended_by_preroll)
        elif out.refused is not None:
            self._finished(out.refused)
        elif out.message:
            self.get_logger().info(out.message)

    def _raw_cb(self, topic: str, msgtype: str):
        return self._guarded(lambda raw: self.recorder.record(topic, msgtype, raw, self._now_ns()), topic, 'not recorded')

    def _command_cb(self, kind: str, msgtype: str):
        return self._guarded(lambda raw: self.recorder.command(kind, msgtype, raw, self._now_ns()), kind,
                             'command not used')

    def _guarded(self, handle, where: str, what: str):
        """A raw-bytes callback: the recorder's result is published; a message it cannot use is logged."""
        def callback(raw: bytes) -> None:
            try:
                self._finished(handle(raw))
            except RecordError as exc:
                self._report_error(where, f'{what}: {exc}')
        return callback

    def _on_success(self, msg: Bool) -> None:
        end = self.recorder.success_signal(bool(msg.data))
        if end is None:
            what = 'no episode is recording' if not self.recorder.is_recording else \
                f'episode {self.recorder.episode_id} has no action yet (a late message about the previous one)'
            self.get_logger().info(f'success={msg.data} ignored: {what}')
        self._finished(end)

    def _on_end_episode(self, request: EndEpisode.Request, response: EndEpisode.Response) -> EndEpisode.Response:
        end = self.recorder.end(bool(request.success), 'service', request.reason)
        if end is None:
            response.accepted, response.message, response.bag_path = False, 'no episode is recording', ''
            return response
        self._finished(end)
        response.accepted = bool(end.bag_path)
        response.message = (f'episode {end.episode_id} ended: success={end.success}, {end.num_steps} steps'
                            + (f'; {end.detail}' if end.detail and not end.bag_path else ''))
        response.bag_path = end.bag_path
        return response

    def _on_timer(self) -> None:
        now = time.monotonic()
        self._finished(self.recorder.check(now))
        for end in self.recorder.salvage_pending(now):
            self._finished(end)

    def _publish_diagnostics(self) -> None:
        rec = self.recorder
        try:
            free = f'{rec.free_disk_mb():.0f}'
        except OSError:
            free = 'nan'
        problems = rec.write_failures or rec.unfinished or self.callback_faults.total
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        state = f'recording {rec.episode_id}' if rec.is_recording else 'idle'
        values = {
            'state': state, 'output_dir': str(rec.output_dir.resolve()), 'free_disk_mb': free,
            'min_free_disk_mb': f'{rec.min_free_disk_mb:g}', 'episodes_finished': str(rec.episodes_finished),
            'refused': str(rec.refused), 'write_failures': str(rec.write_failures), 'salvaged': str(rec.salvaged),
            'unfinished_to_salvage': ' '.join(rec.unfinished), 'callback_failures': str(self.callback_faults.total),
            'last_callback_failure': self.callback_faults.last,
        }
        name = self.get_fully_qualified_name()
        status = DiagnosticStatus(level=level, name=f'{name}: recorder', hardware_id=name, message=state,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def shutdown_recording(self) -> None:
        """Finalize an open episode (failure, 'shutdown') and publish its result."""
        self._finished(self.recorder.shutdown())


def main(args=None) -> int:
    def stop(node, executor):
        try:
            node.shutdown_recording()  # data recorded so far is kept as a complete bag
            executor.spin_once(timeout_sec=0.05)  # let the last EpisodeResult go out
        except Exception as exc:  # noqa: BLE001
            node.get_logger().error(f'finalizing on shutdown failed: {exc}')
            return 1
        return 0

    return spin_until_signal('qt_recorder', RecorderNode, args, on_stop=stop)


if __name__ == '__main__':
    raise SystemExit(main())
