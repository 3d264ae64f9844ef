"""qt_recorder: records one rosbag2 episode bag per instruction (the robot's training data).

A lifecycle node (as the policy is; `autostart` configures and activates it at start-up) and a thin
adapter around `runtime.episode_recorder.EpisodeRecorder` (see its docstring for the rules). While
active it has:

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

Deactivate, SIGINT or SIGTERM: an open episode is finalized as a failure with end_reason ``shutdown``.
SIGKILL, a crash or a full disk: at most ``flush_period_s`` of the open episode is lost; the rest
becomes a bag at the next start (docs/nodes.md, "What survives what").

    python -m qt_policy.nodes.recorder_node --ros-args --params-file config/recorder.yaml
"""
from __future__ import annotations

import time

import rclpy
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
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
from ..runtime.throttle import Throttle
from .instruction_input import subscribe_instructions
from .logs import log_at
from .managed_node import ManagedNode, run
from .qos import RELIABLE_10

ERROR_LOG_PERIOD_S = 10.0


class RecorderNode(ManagedNode):
    """Lifecycle wrapper: raw messages -> EpisodeRecorder -> EpisodeResult. Configure makes the recorder
    (and salvages what a crash left), activate starts recording instructions, deactivate finalizes an
    open episode (failure, 'shutdown'), cleanup lets go of the output folder."""

    role = 'recorder'

    def __init__(self, **kwargs):
        super().__init__('qt_recorder', RecorderNodeConfig, **kwargs)
        self.recorder: EpisodeRecorder | None = None
        self._result_pub = None
        self._errors = Throttle(ERROR_LOG_PERIOD_S)  # unusable messages, per topic

    # ----- lifecycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = cfg = self.read_config()
            self.recorder = EpisodeRecorder.from_config(cfg, log=self._log)
        except Exception as exc:  # noqa: BLE001 - report, stay unconfigured, let an operator retry
            self.recorder = None
            return self.configure_failed(exc)
        self._result_pub = self.create_lifecycle_publisher(EpisodeResult, cfg.result_topic, RELIABLE_10)
        self.entities = [self._result_pub]
        emb = self.recorder.embodiment
        self.entities += subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        for k, camera in enumerate(emb.cameras):  # camera k -> the bag's bf.image_topic(k)
            kind, msgtype = (CompressedImage, bf.COMPRESSED_IMAGE_TYPE) if camera.compressed else (Image, bf.IMAGE_TYPE)
            self.entities.append(self.create_subscription(
                kind, camera.topic, self._raw_cb(bf.image_topic(k, camera.compressed), msgtype),
                qos_profile_sensor_data, raw=True))
        if emb.state.topic.strip():
            self.entities.append(self.create_subscription(
                JointState, emb.state.topic, self._raw_cb(bf.STATE_TOPIC, bf.JOINT_STATE_TYPE),
                qos_profile_sensor_data, raw=True))
        self._sources = self._subscribe_actions(cfg, emb)
        self.entities.append(self.create_subscription(Bool, cfg.success_topic, self._on_success, RELIABLE_10))
        self.entities.append(self.create_service(EndEpisode, '~/end_episode', self._on_end_episode))
        self.entities.append(self.create_timer(cfg.check_period_s, self._on_timer))
        self.lifecycle = 'inactive'
        self.get_logger().info(f'configured: {emb.name!r} to {self.recorder.output_dir.resolve()}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # the result publisher goes live first: results are not lost
        self.lifecycle = 'active'
        for end in self.recorder.salvage_pending(time.monotonic(), scan=True):  # what a crash left
            self._finished(end)
        cfg = self.config
        self.get_logger().info(
            f'recording {self.recorder.embodiment.name!r} to {self.recorder.output_dir.resolve()} (timeout '
            f'{cfg.episode_timeout_s:g} s, min free disk {cfg.min_free_disk_mb} MB); instruction on '
            f'{self._topic(cfg.instruction_topic)}; actions from {", ".join(self._sources)}')
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown_recording()  # while the result publisher is still live
        self.lifecycle = 'inactive'
        self.get_logger().info('deactivated: not recording')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.destroy_entities()
        self.recorder, self._result_pub, self.lifecycle = None, None, 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.lifecycle == 'active':
            self.shutdown_recording()
        self.destroy_entities()
        self.recorder, self.lifecycle = None, 'finalized'
        return super().on_shutdown(state)

    def _subscribe_actions(self, cfg, emb) -> list[str]:
        """The policy's QAction, or (teleop) the robot's command topics; returns the topic names."""
        if cfg.action_source == 'policy':
            self.entities.append(self.create_subscription(
                QAction, cfg.action_topic, self._raw_cb(bf.ACTION_TOPIC, bf.QACTION_TYPE), RELIABLE_10, raw=True))
            return [self._topic(cfg.action_topic)]
        cmap, sources = self.recorder.teleop.map, []
        if cmap.twist_index:
            self.entities.append(self.create_subscription(
                TwistStamped, emb.twist.topic, self._command_cb('twist', bf.TWIST_STAMPED_TYPE), RELIABLE_10, raw=True))
            sources.append(self._topic(emb.twist.topic))
        if cmap.joint_index:
            joint_type, joint_msg = ((bf.JOINT_TRAJECTORY_TYPE, JointTrajectory) if emb.joints.type == 'joint_trajectory'
                                     else (bf.FLOAT64_MULTI_ARRAY_TYPE, Float64MultiArray))
            self.entities.append(self.create_subscription(
                joint_msg, emb.joints.topic, self._command_cb('joints', joint_type), RELIABLE_10, raw=True))
            sources.append(self._topic(emb.joints.topic))
        if cmap.gripper_index is not None:
            self.entities.append(self.create_subscription(
                Float64, emb.gripper.topic, self._command_cb('gripper', bf.FLOAT64_TYPE), RELIABLE_10, raw=True))
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
        if self._errors.hit(key) is not None:
            self.get_logger().warning(f'{message} ({self._errors.counts[key]} so far)')

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
        msg.operator_share = float(end.operator_share)
        self._result_pub.publish(msg)
        line = (f'episode {end.episode_id or "(none)"} {end.instruction!r}: success={end.success} '
                f'steps={end.num_steps} reason={end.end_reason} ({end.duration_s:.1f} s) '
                f'bag {end.bag_path or "NOT WRITTEN"}' + (f' -- {end.detail}' if end.detail else ''))
        log_at(self.get_logger(), 'info' if end.bag_path else 'error', line)

    # ----- callbacks -----------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """Active: instructions start episodes, messages are recorded (configured only: all ignored)."""
        return self.lifecycle == 'active'

    def _on_instruction(self, instruction: Instruction, raw: bytes) -> None:
        if not self.recording:
            return
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
            if not self.recording:
                return
            try:
                self._finished(handle(raw))
            except RecordError as exc:
                self._report_error(where, f'{what}: {exc}')
        return callback

    def _on_success(self, msg: Bool) -> None:
        if not self.recording:
            return
        end = self.recorder.success_signal(bool(msg.data))
        if end is None:
            what = 'no episode is recording' if not self.recorder.is_recording else \
                f'episode {self.recorder.episode_id} has no action yet (a late message about the previous one)'
            self.get_logger().info(f'success={msg.data} ignored: {what}')
        self._finished(end)

    def _on_end_episode(self, request: EndEpisode.Request, response: EndEpisode.Response) -> EndEpisode.Response:
        end = self.recorder.end(bool(request.success), 'service', request.reason) if self.recording else None
        if end is None:
            why = 'no episode is recording' if self.recording else f'the recorder is {self.lifecycle}'
            response.accepted, response.message, response.bag_path = False, why, ''
            return response
        self._finished(end)
        response.accepted = bool(end.bag_path)
        response.message = (f'episode {end.episode_id} ended: success={end.success}, {end.num_steps} steps'
                            + (f'; {end.detail}' if end.detail and not end.bag_path else ''))
        response.bag_path = end.bag_path
        return response

    def _on_timer(self) -> None:
        if not self.recording:
            return
        now = time.monotonic()
        self._finished(self.recorder.check(now))
        for end in self.recorder.salvage_pending(now):
            self._finished(end)

    def diagnostics(self):
        rec = self.recorder
        if rec is None:
            return ('error' if 'failed' in self.lifecycle else 'warn'), self.lifecycle, {'state': self.lifecycle}
        try:
            free = f'{rec.free_disk_mb():.0f}'
        except OSError:
            free = 'nan'
        problems = rec.write_failures or rec.unfinished or self.callback_faults.total
        state = (f'recording {rec.episode_id}' if rec.is_recording else 'idle') if self.recording else self.lifecycle
        return ('warn' if problems or not self.recording else 'ok'), state, {
            'state': state, 'output_dir': str(rec.output_dir.resolve()), 'free_disk_mb': free,
            'min_free_disk_mb': f'{rec.min_free_disk_mb:g}', 'episodes_finished': str(rec.episodes_finished),
            'refused': str(rec.refused), 'write_failures': str(rec.write_failures), 'salvaged': str(rec.salvaged),
            'unfinished_to_salvage': ' '.join(rec.unfinished), 'last_callback_failure': self.callback_faults.last,
        }

    def shutdown_recording(self) -> None:
        """Finalize an open episode (failure, 'shutdown') and publish its result."""
        if self.recorder is not None:
            self._finished(self.recorder.shutdown())


def main(args=None) -> int:
    """Spin until SIGINT/SIGTERM, then deactivate: an open episode is kept as a complete bag."""
    def stop(node, executor):
        try:
            if node.lifecycle == 'active':
                node.trigger_deactivate()
            executor.spin_once(timeout_sec=0.05)  # let the last EpisodeResult go out
        except Exception as exc:  # noqa: BLE001
            node.get_logger().error(f'finalizing on shutdown failed: {exc}')
            return 1
        return 0

    return run('qt_recorder', RecorderNode, args, on_stop=stop)


if __name__ == '__main__':
    raise SystemExit(main())
