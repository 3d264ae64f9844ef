"""The episode recorder's logic without ROS: one episode bag per instruction, ended by a rule.

`EpisodeRecorder` is a small state machine around :class:`~qt_policy.data.bag_writer.EpisodeBagWriter`
(idle <-> recording). The recorder node (nodes/recorder_node.py) only feeds it raw CDR bytes from
its subscriptions and publishes what it returns; everything here is testable with fake times.

Rules (each one ends the open episode with ``finalize``, so the bag is complete and readable):

* ``start``: a new episode per instruction, starting when the instruction was *sent* (the pre-roll,
  runtime/preroll.py); a new instruction first ends a running episode as ``preempted``; an empty one
  only ends it ("stop").
* ``record``: frames, states and actions are written only while an episode is open; with
  ``drop_actions_before_start`` (default) those stamped (a QAction: decided from a frame stamped)
  before the episode start are not: they show the previous episode's scene. A QAction with
  ``terminate=True`` is written, then ends the episode as a failure (``terminate``): success evidence
  only comes from the success topic or the service, so a policy's "I am done" is not a success label.
* ``success_signal``: the success topic (``success_topic``); ``end``: any rule, e.g. the EndEpisode
  service (``service``); ``check``: ``timeout`` after ``episode_timeout_s`` and the free-disk check
  (runtime/disk_space.py: refused below ``min_free_disk_mb``, a running episode ends as ``disk_full``);
  ``shutdown``: a failure ``shutdown`` -- what was recorded is complete data and is never thrown away.
  EpisodeResult says which share of the steps a person drove (QAction ``intervention``).
Faults (a write error, a full disk, a kill) leave the bag unfinished; it becomes an ordinary bag as
soon as there is room: runtime/unfinished_bags.py."""
from __future__ import annotations

import math
import os
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..data import bag_format as bf
from ..data.bag_writer import EpisodeBagWriter
from ..robot.embodiment import Embodiment
from ..robot.teleop_steps import TeleopSteps
from ..codec.commands import decode_command
from .disk_space import DiskSpace, free_mb
from .instruction_gate import normalize
from .preroll import Heard, PreRoll
from .recorder_config import END_REASONS, Logger, default_log, EpisodeEnd, RecordError, RecorderNodeConfig, StartOutcome
from .unfinished_bags import UnfinishedBags
from .recorded_frames import compress_frame, teleop_qaction

class EpisodeRecorder:
    """idle <-> recording; see the module docstring for the rules. Thread-safe (one lock)."""

    def __init__(self, output_dir: str | os.PathLike, episode_timeout_s: float = 30.0,
                 min_free_disk_mb: float = 500.0, disk_check_period_s: float = 5.0, typestore=None,
                 log: Logger | None = None, wall_clock_ns: Callable[[], int] = time.time_ns,
                 drop_actions_before_start: bool = True, flush_period_s: float | None = 1.0,
                 embodiment: Embodiment | None = None, teleop: bool = False, image_format: str = "as_received",
                 jpeg_quality: int = 90, preroll_s: float = 2.0):
        self.output_dir = Path(output_dir)
        self.preroll = PreRoll(preroll_s)  # what arrived in the last preroll_s, recording or not
        self.episode_timeout_s = float(episode_timeout_s)
        self.disk_check_period_s = float(disk_check_period_s)
        self.typestore = typestore if typestore is not None else bf.get_episode_typestore()
        self.log = log or default_log
        self.wall_clock_ns = wall_clock_ns
        self.drop_actions_before_start = bool(drop_actions_before_start)
        self.flush_period_s = flush_period_s
        self.embodiment = embodiment
        if teleop and embodiment is None:
            raise ValueError("teleoperation recording needs the robot's embodiment (its command topics)")
        self.teleop = TeleopSteps(embodiment) if teleop else None
        self.image_format, self.jpeg_quality = image_format, int(jpeg_quality)
        self.write_failures = self.refused = 0
        self._dropped_actions = self._operator_steps = 0
        self._lock = threading.RLock()
        self._writer: EpisodeBagWriter | None = None
        self._episode_id = self._instruction = ""
        self._started_at = 0.0
        self._start_log_ns = 0
        self._last_disk_check = -math.inf
        self.disk = DiskSpace(self.output_dir, min_free_disk_mb, lambda: self.free_disk_mb(), self.log)
        self.unfinished_bags = UnfinishedBags(self.output_dir, self.typestore, self.disk_check_period_s, self.log)
        self._counter = 0
        self.episodes_finished = 0
        status, free = self.disk.status()
        if status == "full":
            self.log("warn", f"only {free:.0f} MB free in {self.output_dir}: instructions are refused until "
                             f"more than min_free_disk_mb={self.min_free_disk_mb:g} MB are free")

    # ----- state ---------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: RecorderNodeConfig, **kwargs) -> "EpisodeRecorder":
        kwargs.setdefault("embodiment", config.validate().load_embodiment())
        return cls(config.output_dir, **{**config.recorder_kwargs(), **kwargs})

    @property
    def is_recording(self) -> bool:
        return self._writer is not None

    @property
    def episode_id(self) -> str:
        return self._episode_id if self._writer is not None else ""

    @property
    def instruction(self) -> str:
        return self._instruction if self._writer is not None else ""

    @property
    def partial_path(self) -> Path | None:
        return self._writer.partial_path if self._writer is not None else None

    @property
    def num_steps(self) -> int:
        """QAction messages recorded in the open episode (0 when idle)."""
        return self._writer.counts.get(bf.ACTION_TOPIC, 0) if self._writer is not None else 0

    # ----- disk ----------------------------------------------------------------------------------

    @property
    def min_free_disk_mb(self) -> float:
        return self.disk.min_free_mb

    @min_free_disk_mb.setter
    def min_free_disk_mb(self, value: float) -> None:
        self.disk.min_free_mb = float(value)

    def free_disk_mb(self) -> float:
        """Free space of the file system holding output_dir (its nearest existing parent)."""
        return free_mb(self.output_dir)

    # ----- lifecycle -----------------------------------------------------------------------------

    def _new_name(self) -> str:
        stamp = datetime.fromtimestamp(self.wall_clock_ns() / 1e9, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        while True:
            self._counter += 1
            name = f"episode_{stamp}_{self._counter:04d}"
            if not (self.output_dir / name).exists() and not (self.output_dir / (name + bf.PARTIAL_SUFFIX)).exists():
                return name

    def start(self, instruction: str, now: float, log_time_ns: int | None = None,
              raw_instruction: bytes | None = None, sent_ns: int | None = None) -> StartOutcome:
        """Begin an episode for `instruction` (ending a running one as 'preempted'); see the module doc.

        `sent_ns`: when the instruction was published (the middleware's source timestamp). The episode
        starts then, not when this recorder heard it: the pre-roll's frames, states, actions and commands
        from that time on are written first, so the arm's first steps are in the bag even when the
        instruction reached the arm and the policy sooner. It is clamped to [heard - preroll_s, heard]
        (a sender's clock far behind or ahead cannot move the start further)."""
        with self._lock:
            text = normalize(instruction)
            ended = None
            if self._writer is not None:
                ended = self._end(False, "preempted", f"new instruction {text!r}" if text else "empty instruction")
            if not text:
                return StartOutcome(False, ended=ended, message="empty instruction: not recording")
            status, free = self.disk.status()
            self._last_disk_check = now
            if status == "full":
                message = (f"not recording {text!r}: only {free:.0f} MB free in {self.output_dir}, below "
                           f"min_free_disk_mb={self.min_free_disk_mb:g}")
                return StartOutcome(False, ended=ended, message=message, refused=self._refuse(text, message))
            log_ns = self.wall_clock_ns() if log_time_ns is None else int(log_time_ns)
            start_ns = log_ns if sent_ns is None else min(log_ns, max(int(sent_ns), log_ns - self.preroll.span_ns))
            replay = self.preroll.since(start_ns)
            writer = EpisodeBagWriter(typestore=self.typestore, flush_period_s=self.flush_period_s)
            name = self._new_name()
            custom = {bf.CUSTOM_EMBODIMENT_KEY: self.embodiment.to_json()} if self.embodiment is not None else None
            first_ns = min([start_ns] + [h.log_ns for h in replay])  # the instruction comes first in the bag
            try:
                partial = writer.open(self.output_dir, name, custom_data=custom)
                if raw_instruction is not None:
                    writer.write_raw(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, raw_instruction, first_ns)
                else:
                    writer.write(bf.INSTRUCTION_TOPIC, bf.STRING_TYPE, bf.make_string_msg(text, self.typestore),
                                 first_ns)
            except Exception as exc:  # noqa: BLE001 - report; the recorder stays idle and usable
                where = writer.abort()
                if where is not None:  # nothing of the episode is in it yet: the recorder keeps no junk
                    shutil.rmtree(where, ignore_errors=True)
                message = f"cannot open episode bag {name} in {self.output_dir}: {type(exc).__name__}: {exc}"
                return StartOutcome(False, ended=ended, message=message, refused=self._refuse(text, message))
            self._writer, self._episode_id, self._instruction = writer, name, text
            self._started_at, self._start_log_ns = float(now), start_ns
            self._dropped_actions = self._operator_steps = 0
            if self.teleop is not None:
                self.teleop.start()
            for heard in replay:  # as if this recorder had heard the instruction at start_ns
                ended_now = self._write(heard, replayed=True)
                if ended_now is not None:
                    return StartOutcome(True, episode_id=name, partial_path=str(partial), ended=ended,
                                        replayed=len(replay), ended_by_preroll=ended_now)
            return StartOutcome(True, episode_id=name, partial_path=str(partial), ended=ended, replayed=len(replay))

    def _refuse(self, text: str, message: str) -> EpisodeEnd:
        self.refused += 1
        return EpisodeEnd(episode_id="", instruction=text, success=False, reward=0.0, num_steps=0,
                          end_reason="refused", bag_path="", stamp_ns=self.wall_clock_ns(), duration_s=0.0,
                          detail=message)

    def record(self, topic: str, msgtype: str, raw: bytes, log_time_ns: int) -> EpisodeEnd | None:
        """Write one message (raw CDR) under its episode-format `topic`; returns the episode end when a
        terminate action or a failed write ends it. Outside an episode it is only kept for the pre-roll.
        Raises RecordError for a message that cannot be recorded (the episode stays open)."""
        stamp = self._frame_stamp(raw, topic)
        heard = Heard(int(log_time_ns), stamp, "record", topic, msgtype, raw)
        with self._lock:
            self.preroll.remember(heard)
            if self._writer is None:
                return None
            return self._write(heard)

    def command(self, kind: str, msgtype: str, raw: bytes, log_time_ns: int) -> EpisodeEnd | None:
        """A teleoperator's command (kind 'twist' | 'joints' | 'gripper', raw CDR) received at log_time_ns:
        it counts for the control steps (robot/teleop_steps.py) and is recorded as received. Commands
        that arrive between episodes still count (a gripper stays where it was told to go).
        Raises RecordError for a malformed command."""
        if self.teleop is None:
            raise RecordError("not recording from commands (action_source is not 'teleop')")
        try:
            dims, values = decode_command(raw, kind, msgtype, self.teleop.map, self.typestore)
        except Exception as exc:  # noqa: BLE001
            raise RecordError(f"malformed {kind} command {msgtype} ({len(raw)} bytes): {exc}") from None
        topic = {"twist": bf.TWIST_COMMAND_TOPIC, "joints": bf.JOINT_COMMAND_TOPIC, "gripper": bf.GRIPPER_COMMAND_TOPIC}[kind]
        heard = Heard(int(log_time_ns), int(log_time_ns), "command", topic, msgtype, raw)
        with self._lock:
            self.teleop.command(log_time_ns * 1e-9, dims, values)
            self.preroll.remember(heard)
            if self._writer is None:
                return None
            return self._write(heard)

    def _write(self, heard: Heard, replayed: bool = False) -> EpisodeEnd | None:
        """Write one heard message into the open episode by the rules (module docstring)."""
        topic, msgtype, raw, log_time_ns = heard.topic, heard.msgtype, heard.raw, heard.log_ns
        if heard.kind == "command":
            if replayed:  # the window has it already (commands always count); only the bag and the start
                self.teleop.command_seen(log_time_ns * 1e-9)
            try:
                self._writer.write_raw(topic, msgtype, raw, log_time_ns)
            except OSError as exc:
                return self._fail(exc, False, "while writing")
            return None
        before_start = self.drop_actions_before_start and heard.stamp_ns < self._start_log_ns
        terminate = False
        if topic == bf.ACTION_TOPIC:
            try:
                action = bf.deserialize(self.typestore, raw, msgtype)  # a policy node of an earlier release too
                terminate = bool(action.terminate)
            except Exception as exc:  # noqa: BLE001
                raise RecordError(f"malformed {msgtype} on {topic} ({len(raw)} bytes): {exc}") from None
            if before_start:
                self._dropped_actions += 1
                return None
            self._operator_steps += bool(getattr(action, "intervention", False))
        elif before_start:  # a frame or state of the scene before this episode
            return None
        step = None
        camera = bf.camera_of_topic(topic)
        if camera is not None:
            if self.image_format != "as_received" and not camera[1]:
                topic, msgtype, raw = bf.image_topic(camera[0], True), bf.COMPRESSED_IMAGE_TYPE, compress_frame(
                    raw, self.image_format, self.jpeg_quality, self.typestore)
            # the first camera's frames are the control steps (as the policy node decides on them)
            if camera[0] == 0 and self.teleop is not None:
                step = self.teleop.frame(log_time_ns * 1e-9, heard.stamp_ns)
        try:
            self._writer.write_raw(topic, msgtype, raw, log_time_ns)
            if step is not None:
                self._write_teleop_step(step, log_time_ns)
        except OSError as exc:  # the disk (full, failing, too slow): the episode ends here
            return self._fail(exc, False, "while writing")
        except Exception as exc:  # noqa: BLE001
            raise RecordError(f"cannot write {topic} to {self._writer.partial_path}: "
                              f"{type(exc).__name__}: {exc}") from None
        if terminate:
            return self._end(False, "terminate", "the policy sent terminate=True")
        return None

    def _frame_stamp(self, raw: bytes, topic: str) -> int:
        try:
            return bf.cdr_header_stamp_ns(raw)
        except ValueError as exc:
            raise RecordError(f"malformed frame on {topic}: {exc}") from None

    def _write_teleop_step(self, step, log_time_ns: int, terminate: bool = False) -> None:
        raw = teleop_qaction(step, self.embodiment.action_names, self._instruction, terminate, self.typestore)
        self._writer.write_raw(bf.ACTION_TOPIC, bf.QACTION_TYPE, raw, log_time_ns)

    def end(self, success: bool, reason: str, detail: str = "", log_time_ns: int | None = None) -> EpisodeEnd | None:
        """Finalize the open episode (None when idle). `reason` is one of END_REASONS; `log_time_ns`:
        when it ended (default: now), which closes the last teleoperated step."""
        if reason not in END_REASONS:
            raise ValueError(f"unknown end_reason {reason!r}; use one of {END_REASONS}")
        with self._lock:
            if self._writer is None:
                return None
            return self._end(bool(success), reason, detail, log_time_ns)

    def success_signal(self, success: bool) -> EpisodeEnd | None:
        """The success topic: ends the open episode with that label (end_reason 'success_topic').

        Ignored (None) while the open episode has no action yet: such a message was sent for the
        previous episode and only arrived (or was handled) after the new instruction -- a robot cannot
        succeed or fail an episode in which it has not acted.
        """
        with self._lock:
            if self._writer is None or self._writer.counts.get(bf.ACTION_TOPIC, 0) == 0:
                return None
            return self._end(bool(success), "success_topic", f"success topic said {bool(success)}")

    def check(self, now: float) -> EpisodeEnd | None:
        """Periodic rules: flush, episode timeout, free disk. Returns the episode it ended, if any."""
        with self._lock:
            if self._writer is None:
                return None
            try:
                self._writer.flush()
            except OSError as exc:
                return self._fail(exc, False, "while flushing")
            if self.episode_timeout_s > 0 and now - self._started_at >= self.episode_timeout_s:
                return self._end(False, "timeout", f"no end within episode_timeout_s={self.episode_timeout_s:g}")
            if now - self._last_disk_check >= self.disk_check_period_s:
                self._last_disk_check = now
                status, free = self.disk.status()
                if status == "full":
                    return self._end(False, "disk_full", f"low disk: {free:.0f} MB free, below "
                                                         f"min_free_disk_mb={self.min_free_disk_mb:g}")
            return None

    def shutdown(self) -> EpisodeEnd | None:
        """Finalize an open episode as failure 'shutdown' (its data is kept)."""
        return self.end(False, "shutdown", "recorder shutting down")

    # ----- faults and salvage --------------------------------------------------------------------

    @property
    def unfinished(self) -> list[str]:
        """Episodes this recorder left unfinished and has not salvaged yet."""
        return sorted(self.unfinished_bags.pending)

    @property
    def salvaged(self) -> int:
        return self.unfinished_bags.salvaged

    def salvage_pending(self, now: float, scan: bool = False) -> list[EpisodeEnd]:
        """Salvage unfinished bags into ordinary ones (runtime/unfinished_bags.py): ``scan=True``
        (start-up) every unfinished folder in output_dir but the open episode's; otherwise the ones
        this recorder left, retried at most every disk_check_period_s while the disk has room.
        Returns one EpisodeEnd per folder handled."""
        with self._lock:
            done = self.unfinished_bags.salvage(now, self.disk, scan=scan, skip=self.episode_id)
            return [EpisodeEnd.of_salvage(name, got, self.wall_clock_ns()) for name, got in done]

    def _fail(self, exc: BaseException, success: bool, when: str, detail: str = "") -> EpisodeEnd:
        """End the open episode after a write error: leave it unfinished, count what is readable."""
        writer, self._writer = self._writer, None
        self.write_failures += 1
        reason, partial, handed, steps = self.unfinished_bags.leave(self._episode_id, writer, exc, success)
        what = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        detail = (f"{detail}; " if detail else "") + (
            f"bag not finished ({what} {when}); {steps} of {handed} steps are readable in {partial}, which "
            f"becomes a bag (end_reason {reason}) as soon as there is room")
        return self._result(bool(success), reason, steps, "", detail, max(self.wall_clock_ns(), self._start_log_ns))

    def _result(self, success: bool, reason: str, steps: int, bag_path: str, detail: str, stamp_ns: int) -> EpisodeEnd:
        """The open episode's EpisodeEnd, ended at stamp_ns."""
        self.episodes_finished += 1
        return EpisodeEnd(episode_id=self._episode_id, instruction=self._instruction, success=success,
                          reward=1.0 if success else 0.0, num_steps=steps, end_reason=reason, bag_path=bag_path,
                          stamp_ns=stamp_ns, duration_s=max(0.0, (stamp_ns - self._start_log_ns) / 1e9), detail=detail,
                          operator_share=self._operator_steps / max(1, steps))

    def _end(self, success: bool, reason: str, detail: str, log_time_ns: int | None = None) -> EpisodeEnd:
        writer = self._writer
        if self.teleop is not None:  # the last step: from its frame to now; a success sets terminate
            end_ns = int(log_time_ns) if log_time_ns is not None else self.wall_clock_ns()
            done = success and reason in ("service", "success_topic", "imported")
            step = self.teleop.finish(end_ns * 1e-9, terminate=done)
            if step is not None:
                try:
                    self._write_teleop_step(step, max(end_ns, writer.max_log_time), terminate=done)
                except OSError as exc:
                    return self._fail(exc, success, f"while writing the last step ({reason})", detail)
        num_steps = writer.counts.get(bf.ACTION_TOPIC, 0)
        stamp_ns = max(self.wall_clock_ns(), self._start_log_ns)
        if self._dropped_actions:
            detail = (f"{detail}; " if detail else "") + (
                f"{self._dropped_actions} action(s) decided from frames older than the episode start not recorded"
                + ("" if num_steps else " (none recorded: if this repeats, check that the camera stamps and the "
                                        "recorder use the same clock)"))
        try:
            final = writer.finalize(success=success, episode_id=self._episode_id, instruction=self._instruction,
                                    reward=1.0 if success else 0.0, num_steps=num_steps, end_reason=reason, stamp_ns=stamp_ns,
                                    detail=detail, operator_share=self._operator_steps / max(1, num_steps))
        except Exception as exc:  # noqa: BLE001 - keep what was written, report, go on
            return self._fail(exc, success, f"while finalizing ({reason})", detail)
        self._writer = None
        if reason != "preempted":  # what was heard until now was this episode's; only a preempting one may claim it
            self.preroll.clear()
        return self._result(success, reason, num_steps, str(final.resolve()), detail, stamp_ns)
