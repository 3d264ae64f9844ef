"""The episode recorder's logic without ROS: one episode bag per instruction, ended by a rule.

`EpisodeRecorder` is a small state machine around :class:`~qt_policy.data.bag_writer.EpisodeBagWriter`
(idle <-> recording). The recorder node (nodes/recorder_node.py) only feeds it raw CDR bytes from
its subscriptions and publishes what it returns; everything here is testable with fake times.

Rules (each one ends the open episode with ``finalize``, so the bag is complete and readable):

* ``start(instruction, now, sent_ns=...)``: opens ``<output_dir>/episode_<UTC time>_<n>.partial/`` and
  writes the instruction first. The episode starts when the instruction was *sent* (``sent_ns``, the
  publisher's source timestamp, clamped to the last ``preroll_s``), not when this recorder heard it:
  over DDS the arm and the policy may hear it sooner, so every message of the last ``preroll_s`` is
  kept (the pre-roll, also between episodes) and those stamped from the start on are written first,
  as if heard then. A new instruction while recording first ends the current episode as a failure
  with end_reason ``preempted`` (its bag may then end with what the new episode's first steps sent
  before this recorder heard of it). An empty instruction only ends the current episode (as
  ``preempted``) and starts nothing: it means "stop".
* ``record(topic, msgtype, raw, log_time_ns)``: written only while an episode is open (camera frames
  and states that arrive before the first action are kept: the first action needs them). Outside an
  episode, messages only go to the pre-roll. With ``drop_actions_before_start`` (default) a frame,
  state or QAction whose header.stamp (for a QAction: the stamp of the camera frame it was decided
  from) is older than the episode start is not recorded: it shows, or was decided from, the previous
  episode's scene (a simulator resets on the instruction and ignores such actions too; the simulated
  arm's paused camera keeps the stamp of its last render). Dropped actions are counted in the
  episode's detail; if every action is dropped, check that the camera stamps and the recorder use the
  same clock.
* A QAction with ``terminate=True`` is written, then ends the episode with end_reason ``terminate``
  and success=False. Success evidence only comes from the success topic or the service, and a success
  message ends the episode at once (end_reason ``success_topic``), so by the time a terminate action
  arrives no success has been seen for this episode: a policy's "I am done" is not a success label.
* ``success_signal(success)``: the success topic (``success_topic``); ignored while the open episode has
  no action yet (it is then a late message about the previous episode).
* ``end(success, reason)``: any rule, e.g. the EndEpisode service (``service``).
* ``check(now)``: ``timeout`` (failure) after ``episode_timeout_s`` (<= 0 disables), plus the
  periodic disk check below.
* ``shutdown()``: an open episode is finalized as a failure with end_reason ``shutdown`` -- the steps
  recorded so far are complete data and are never thrown away (training may filter on end_reason).

Free disk space (``shutil.disk_usage`` of the output folder) is checked at construction, before every
start and every ``disk_check_period_s`` while recording: below ``2 * min_free_disk_mb`` a warning is
logged (once per low-disk spell); below ``min_free_disk_mb`` an instruction is refused (an EpisodeEnd
with end_reason ``refused`` says why), and a running episode is finalized as a failure with
end_reason ``disk_full`` while the bag can still be closed cleanly.

Faults (see docs/nodes.md, "What survives what"): messages reach the file as complete MCAP chunks at
least every ``flush_period_s`` (a worker thread writes them, so a slow disk does not block the
caller). A write or finalize that fails (ENOSPC -> ``disk_full``, anything else -> ``write_error``)
ends the episode at once: the bag is left unfinished (``.partial``), the EpisodeEnd counts the steps
that are readable in it and has bag_path ''. Unfinished folders -- these, and those of a recorder that
was killed -- are salvaged into ordinary bags by ``salvage_pending`` (the node calls it at start-up
and from its timer once there is disk space again); each salvage is an EpisodeEnd of its own, with
the bag_path.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..data import bag_format as bf
from ..data.bag_writer import EpisodeBagWriter
from ..data.bag_salvage import INTERRUPTED, PartialBagScan, UnfinishedMark, find_unfinished, salvage_partial
from ..robot.embodiment import Embodiment, load_embodiment
from ..robot.teleop_steps import TeleopSteps
from ..paths import DEFAULT_EMBODIMENT, resolve_data_path
from .instruction_gate import normalize
from .recorded_frames import compress_frame, teleop_qaction

#: every end_reason an EpisodeEnd can carry: the rules, the faults, and 'refused' (nothing was recorded)
END_REASONS = ("service", "terminate", "success_topic", "timeout", "shutdown", "preempted",
               "disk_full", "write_error", INTERRUPTED, "refused", "imported")
ACTION_SOURCES = ("policy", "teleop")
IMAGE_FORMATS = ("as_received", "jpeg", "png")

Logger = Callable[[str, str], None]  # (level: 'info' | 'warn' | 'error', message)

_py_log = logging.getLogger("qt_policy.episode_recorder")


def _default_log(level: str, message: str) -> None:
    {"info": _py_log.info, "warn": _py_log.warning, "error": _py_log.error}.get(level, _py_log.info)(message)


@dataclass
class RecorderNodeConfig:
    """Parameters of the recorder node (config/recorder.yaml names exactly these fields).

    Topic names are the ROS topics subscribed to (relative = inside the node's namespace); the bag
    always stores them under the episode format's topic names (/camera/image_raw, /instruction,
    /robot_state, /qt/action, /episode_result) so every bag reads the same way.
    """

    output_dir: str = "data/recorded"  # one rosbag2 folder per episode (relative: to the cwd)
    # the robot (robot/embodiment.py): camera and state topics, the command topics of teleoperation;
    # stored in every bag, so training knows the robot
    embodiment: str = DEFAULT_EMBODIMENT
    # policy: record the policy's qt_msgs/QAction; teleop: make the actions from the robot's command
    # topics (TwistStamped / joint commands / gripper) a teleoperator drives, one per control step
    action_source: str = "policy"
    image_format: str = "as_received"  # as_received | jpeg | png (the recorder compresses raw frames: ~20x smaller)
    jpeg_quality: int = 90
    episode_timeout_s: float = 30.0  # end an episode as failure 'timeout' after this long; <= 0: never
    min_free_disk_mb: int = 500  # refuse to start below this much free disk; warn below twice this
    disk_check_period_s: float = 5.0  # free-disk check period while recording
    check_period_s: float = 0.2  # timer for the timeout/disk checks
    instruction_topic: str = "instruction"  # std_msgs/String, reliable + transient-local
    action_topic: str = "qt/action"  # qt_msgs/QAction, reliable (action_source policy)
    success_topic: str = "success"  # std_msgs/Bool: True -> success, False -> failure
    result_topic: str = "episode_result"  # qt_msgs/EpisodeResult, published after each episode
    drop_actions_before_start: bool = True  # skip frames, states and actions stamped before the episode start
    # the messages of the last preroll_s seconds are kept, so that an instruction heard late still
    # records its episode from the start (the instruction's publication time); <= 0: none kept
    preroll_s: float = 2.0
    flush_period_s: float = 1.0  # most of an open episode a crash/kill/full disk can lose (a chunk per period)
    diagnostics_period_s: float = 1.0  # /diagnostics period (recording state, free disk, failures)

    def validate(self) -> "RecorderNodeConfig":
        if not self.output_dir.strip():
            raise ValueError("parameter 'output_dir' is empty")
        if self.min_free_disk_mb < 0:
            raise ValueError(f"parameter 'min_free_disk_mb' must be >= 0, got {self.min_free_disk_mb}")
        if not self.preroll_s >= 0:
            raise ValueError(f"parameter 'preroll_s' must be >= 0, got {self.preroll_s}")
        for name in ("disk_check_period_s", "check_period_s", "flush_period_s", "diagnostics_period_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")
        for name in ("instruction_topic", "action_topic", "success_topic", "result_topic", "embodiment"):
            if not getattr(self, name).strip():
                raise ValueError(f"parameter '{name}' is empty")
        if self.action_source not in ACTION_SOURCES:
            raise ValueError(f"parameter 'action_source' must be one of {ACTION_SOURCES}, got {self.action_source!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"parameter 'image_format' must be one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"parameter 'jpeg_quality' must lie in 1..100, got {self.jpeg_quality}")
        return self

    def load_embodiment(self) -> Embodiment:
        return load_embodiment(resolve_data_path(self.embodiment))


@dataclass(frozen=True)
class EpisodeEnd:
    """One finalized episode: the fields of qt_msgs/EpisodeResult plus bookkeeping."""

    episode_id: str
    instruction: str
    success: bool
    reward: float
    num_steps: int
    end_reason: str
    bag_path: str  # the final bag folder; '' when finalize failed (then `detail` names the .partial)
    stamp_ns: int  # end time (log time of the /episode_result message)
    duration_s: float
    detail: str = ""  # why, in words (service reason, 'low disk', an error, what a salvage recovered)


@dataclass(frozen=True)
class StartOutcome:
    """What `start` did: maybe ended the previous episode, maybe started a new one."""

    started: bool
    episode_id: str = ""
    partial_path: str = ""
    ended: EpisodeEnd | None = None  # the episode preempted by this instruction
    message: str = ""  # why nothing started (low disk, empty instruction, error)
    refused: EpisodeEnd | None = None  # the result of an instruction that could not be recorded
    replayed: int = 0  # messages from the pre-roll written into the new episode
    ended_by_preroll: EpisodeEnd | None = None  # the new episode, already ended by a pre-roll message (terminate)


@dataclass(frozen=True)
class _Heard:
    """One message as it arrived, kept for the pre-roll."""

    log_ns: int  # when the recorder received it
    stamp_ns: int  # its header.stamp (a command: log_ns): which episode it belongs to
    kind: str  # 'record' (frame, state, action) | 'command' (a teleoperator's, already in the command window)
    topic: str
    msgtype: str
    raw: bytes


class RecordError(ValueError):
    """A message could not be recorded (malformed bytes, write error); the episode stays open."""


class EpisodeRecorder:
    """idle <-> recording; see the module docstring for the rules. Thread-safe (one lock)."""

    def __init__(self, output_dir: str | os.PathLike, episode_timeout_s: float = 30.0,
                 min_free_disk_mb: float = 500.0, disk_check_period_s: float = 5.0, typestore=None,
                 log: Logger | None = None, wall_clock_ns: Callable[[], int] = time.time_ns,
                 drop_actions_before_start: bool = True, flush_period_s: float | None = 1.0,
                 embodiment: Embodiment | None = None, teleop: bool = False, image_format: str = "as_received",
                 jpeg_quality: int = 90, preroll_s: float = 2.0):
        self.output_dir = Path(output_dir)
        self.preroll_ns = int(max(0.0, float(preroll_s)) * 1e9)
        self._preroll: deque[_Heard] = deque()  # what arrived in the last preroll_s, recording or not
        self.episode_timeout_s = float(episode_timeout_s)
        self.min_free_disk_mb = float(min_free_disk_mb)
        self.disk_check_period_s = float(disk_check_period_s)
        self.typestore = typestore if typestore is not None else bf.get_episode_typestore()
        self.log = log or _default_log
        self.wall_clock_ns = wall_clock_ns
        self.drop_actions_before_start = bool(drop_actions_before_start)
        self.flush_period_s = flush_period_s
        self.embodiment = embodiment
        if teleop and embodiment is None:
            raise ValueError("teleoperation recording needs the robot's embodiment (its command topics)")
        self.teleop = TeleopSteps(embodiment) if teleop else None
        self.image_format, self.jpeg_quality = image_format, int(jpeg_quality)
        self._unfinished: dict[str, UnfinishedMark | None] = {}  # left by this recorder, to salvage
        self._last_salvage_try = -math.inf
        self.write_failures = 0
        self.refused = 0
        self.salvaged = 0
        self._dropped_actions = 0
        self._lock = threading.RLock()
        self._writer: EpisodeBagWriter | None = None
        self._episode_id = ""
        self._instruction = ""
        self._started_at = 0.0
        self._start_log_ns = 0
        self._last_disk_check = -math.inf
        self._disk_low_warned = False
        self._counter = 0
        self.episodes_finished = 0
        status, free = self._disk_status()
        if status == "full":
            self.log("warn", f"only {free:.0f} MB free in {self.output_dir}: instructions are refused until "
                             f"more than min_free_disk_mb={self.min_free_disk_mb:g} MB are free")

    # ----- state ---------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: RecorderNodeConfig, **kwargs) -> "EpisodeRecorder":
        config.validate()
        kwargs.setdefault("embodiment", config.load_embodiment())
        return cls(config.output_dir, episode_timeout_s=config.episode_timeout_s,
                   min_free_disk_mb=config.min_free_disk_mb, disk_check_period_s=config.disk_check_period_s,
                   drop_actions_before_start=config.drop_actions_before_start,
                   flush_period_s=config.flush_period_s, teleop=config.action_source == "teleop",
                   image_format=config.image_format, jpeg_quality=config.jpeg_quality,
                   preroll_s=config.preroll_s, **kwargs)

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

    def free_disk_mb(self) -> float:
        """Free space of the file system holding output_dir (its nearest existing parent)."""
        path = self.output_dir.resolve()
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free / (1024.0 * 1024.0)

    def _disk_status(self) -> tuple[str, float]:
        """('ok' | 'low' | 'full', free MB); 'low' is logged once per low spell."""
        try:
            free = self.free_disk_mb()
        except OSError as exc:
            self.log("warn", f"cannot check free disk space of {self.output_dir}: {exc}")
            return "ok", math.nan
        if free < self.min_free_disk_mb:
            return "full", free
        if free < 2.0 * self.min_free_disk_mb:
            if not self._disk_low_warned:
                self.log("warn", f"low disk: {free:.0f} MB free in {self.output_dir} (episodes are refused below "
                                 f"min_free_disk_mb={self.min_free_disk_mb:g} MB)")
                self._disk_low_warned = True
            return "low", free
        self._disk_low_warned = False
        return "ok", free

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
            status, free = self._disk_status()
            self._last_disk_check = now
            if status == "full":
                message = (f"not recording {text!r}: only {free:.0f} MB free in {self.output_dir}, below "
                           f"min_free_disk_mb={self.min_free_disk_mb:g}")
                return StartOutcome(False, ended=ended, message=message, refused=self._refuse(text, message))
            log_ns = self.wall_clock_ns() if log_time_ns is None else int(log_time_ns)
            start_ns = log_ns if sent_ns is None else min(log_ns, max(int(sent_ns), log_ns - self.preroll_ns))
            replay = [h for h in self._preroll if h.stamp_ns >= start_ns]
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
            self._dropped_actions = 0
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
        heard = _Heard(int(log_time_ns), stamp, "record", topic, msgtype, raw)
        with self._lock:
            self._remember(heard)
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
        dims, values = self._parse_command(kind, msgtype, raw)
        topic = {"twist": bf.TWIST_COMMAND_TOPIC, "joints": bf.JOINT_COMMAND_TOPIC, "gripper": bf.GRIPPER_COMMAND_TOPIC}[kind]
        heard = _Heard(int(log_time_ns), int(log_time_ns), "command", topic, msgtype, raw)
        with self._lock:
            self.teleop.command(log_time_ns * 1e-9, dims, values)
            self._remember(heard)
            if self._writer is None:
                return None
            return self._write(heard)

    def _parse_command(self, kind: str, msgtype: str, raw: bytes):
        try:
            msg = self.typestore.deserialize_cdr(raw, msgtype)
            cmap = self.teleop.map
            if kind == "twist":
                t = msg.twist
                dims, values = cmap.from_twist((t.linear.x, t.linear.y, t.linear.z), (t.angular.x, t.angular.y, t.angular.z))
            elif kind == "joints" and msgtype == bf.JOINT_TRAJECTORY_TYPE:
                if not msg.points:
                    raise ValueError("JointTrajectory without points")
                point = msg.points[0]
                field = point.velocities if cmap.joint_kind == "joint_velocity" else point.positions
                dims, values = cmap.from_joints(msg.joint_names, field)
            elif kind == "joints":
                dims, values = cmap.from_joints([], msg.data)
            elif kind == "gripper":
                dims, values = cmap.from_gripper(msg.data)
            else:
                raise ValueError(f"unknown command kind {kind!r}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"non-finite command {list(values)}")
        except Exception as exc:  # noqa: BLE001
            raise RecordError(f"malformed {kind} command {msgtype} ({len(raw)} bytes): {exc}") from None
        return dims, values

    def _remember(self, heard: _Heard) -> None:
        """Keep `heard` for the pre-roll; forget what is older than preroll_s."""
        if self.preroll_ns <= 0:
            return
        self._preroll.append(heard)
        horizon = heard.log_ns - self.preroll_ns
        while self._preroll and self._preroll[0].log_ns < horizon:
            self._preroll.popleft()

    def _write(self, heard: _Heard, replayed: bool = False) -> EpisodeEnd | None:
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
                terminate = bool(self.typestore.deserialize_cdr(raw, msgtype).terminate)
            except Exception as exc:  # noqa: BLE001
                raise RecordError(f"malformed {msgtype} on {topic} ({len(raw)} bytes): {exc}") from None
            if before_start:
                self._dropped_actions += 1
                return None
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
                status, free = self._disk_status()
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
        return sorted(self._unfinished)

    def salvage_pending(self, now: float, scan: bool = False) -> list[EpisodeEnd]:
        """Salvage unfinished bags into ordinary ones (see data/bag_salvage.py).

        ``scan=True`` (start-up): every ``.partial``/``.salvaging`` folder in output_dir except the open
        episode's; otherwise the ones this recorder left, retried at most every disk_check_period_s
        and only while the disk has room for them. Returns one EpisodeEnd per folder handled.
        """
        with self._lock:
            if scan:
                for name in find_unfinished(self.output_dir):
                    if name != self.episode_id:
                        self._unfinished.setdefault(name, None)
            elif not self._unfinished or now - self._last_salvage_try < self.disk_check_period_s:
                return []
            self._last_salvage_try = now
            out = []
            for name in sorted(self._unfinished):
                size_mb = sum(f.stat().st_size for f in self.output_dir.glob(f"{name}.*/*") if f.is_file()) / 2**20
                status, free = self._disk_status()
                if status == "full" or free - size_mb < self.min_free_disk_mb:
                    break  # retried later; the folder stays as it is
                try:
                    got = salvage_partial(self.output_dir, name, self._unfinished[name], typestore=self.typestore)
                except FileNotFoundError:
                    del self._unfinished[name]  # removed by hand meanwhile
                    continue
                except OSError as exc:
                    self.log("warn", f"salvage of {name} failed ({type(exc).__name__}: {exc}); retried later")
                    break
                del self._unfinished[name]
                self.salvaged += bool(got.bag_path)
                out.append(EpisodeEnd(episode_id=name, instruction=got.instruction, success=got.success,
                                      reward=1.0 if got.success else 0.0, num_steps=got.num_steps,
                                      end_reason=got.end_reason, bag_path=got.bag_path,
                                      stamp_ns=got.stamp_ns or self.wall_clock_ns(), duration_s=0.0,
                                      detail=got.detail))
            return out

    def _fail(self, exc: BaseException, success: bool, when: str, detail: str = "") -> EpisodeEnd:
        """End the open episode after a write error: leave it unfinished, count what is readable."""
        writer, self._writer = self._writer, None
        self.write_failures += 1
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        reason = "disk_full" if full else "write_error"
        handed = writer.counts.get(bf.ACTION_TOPIC, 0)
        partial = None
        try:
            partial = writer.abort()
        except Exception:  # noqa: BLE001
            pass
        partial = partial or writer.partial_path
        mark = UnfinishedMark(reason, bool(success), handed)
        mark.save(partial)
        self._unfinished[self._episode_id] = mark
        readable = PartialBagScan(partial).count()
        steps = readable.get(bf.ACTION_TOPIC, 0)
        what = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        detail = (f"{detail}; " if detail else "") + (
            f"bag not finished ({what} {when}); {steps} of {handed} steps are readable in {partial}, which "
            f"becomes a bag (end_reason {reason}) as soon as there is room")
        stamp_ns = max(self.wall_clock_ns(), self._start_log_ns)
        self.episodes_finished += 1
        return EpisodeEnd(episode_id=self._episode_id, instruction=self._instruction, success=bool(success),
                          reward=1.0 if success else 0.0, num_steps=steps, end_reason=reason, bag_path="",
                          stamp_ns=stamp_ns, duration_s=max(0.0, (stamp_ns - self._start_log_ns) / 1e9),
                          detail=detail)

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
        duration = max(0.0, (stamp_ns - self._start_log_ns) / 1e9)
        reward = 1.0 if success else 0.0
        if self._dropped_actions:
            detail = (f"{detail}; " if detail else "") + (
                f"{self._dropped_actions} action(s) decided from frames older than the episode start not recorded"
                + ("" if num_steps else " (none recorded: if this repeats, check that the camera stamps and the "
                                        "recorder use the same clock)"))
        try:
            final = writer.finalize(success=success, episode_id=self._episode_id, instruction=self._instruction,
                                    reward=reward, num_steps=num_steps, end_reason=reason, stamp_ns=stamp_ns,
                                    detail=detail)
        except Exception as exc:  # noqa: BLE001 - keep what was written, report, go on
            return self._fail(exc, success, f"while finalizing ({reason})", detail)
        self._writer = None
        self.episodes_finished += 1
        if reason != "preempted":  # what was heard until now was this episode's; only a preempting one may claim it
            self._preroll.clear()
        return EpisodeEnd(episode_id=self._episode_id, instruction=self._instruction, success=success, reward=reward,
                          num_steps=num_steps, end_reason=reason, bag_path=str(final.resolve()), stamp_ns=stamp_ns,
                          duration_s=duration, detail=detail)

    # ----- helpers for the node ------------------------------------------------------------------

    def decode_string(self, raw: bytes) -> str:
        """std_msgs/String CDR -> text (raises RecordError on malformed bytes)."""
        try:
            return str(self.typestore.deserialize_cdr(raw, bf.STRING_TYPE).data)
        except Exception as exc:  # noqa: BLE001
            raise RecordError(f"malformed std_msgs/String ({len(raw)} bytes): {exc}") from None
