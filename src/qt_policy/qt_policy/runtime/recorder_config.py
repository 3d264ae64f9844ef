"""The recorder's configuration (config/recorder.yaml names exactly these fields) and what it reports:
`EpisodeEnd` (one finalized episode, the fields of qt_msgs/EpisodeResult) and `StartOutcome`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..data.episode import RECORDER_END_REASONS as END_REASONS
from ..paths import DEFAULT_EMBODIMENT, resolve_data_path
from ..robot.embodiment import Embodiment, load_embodiment

__all__ = ["ACTION_SOURCES", "END_REASONS", "IMAGE_FORMATS", "EpisodeEnd", "RecordError", "RecorderNodeConfig", "StartOutcome"]

Logger = Callable[[str, str], None]  # (level: 'info' | 'warn' | 'error', message): the node passes its own
_py_log = logging.getLogger("qt_policy.episode_recorder")


def default_log(level: str, message: str) -> None:
    """The recorder's log without a node: Python logging."""
    {"info": _py_log.info, "warn": _py_log.warning, "error": _py_log.error}.get(level, _py_log.info)(message)


ACTION_SOURCES = ("policy", "teleop")
IMAGE_FORMATS = ("as_received", "jpeg", "png")


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
    autostart: bool = True  # configure + activate at startup (no lifecycle manager needed)

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

    def recorder_kwargs(self) -> dict[str, Any]:
        """EpisodeRecorder's keyword arguments (runtime/episode_recorder.py) but the embodiment."""
        return dict(episode_timeout_s=self.episode_timeout_s, min_free_disk_mb=self.min_free_disk_mb,
                    disk_check_period_s=self.disk_check_period_s,
                    drop_actions_before_start=self.drop_actions_before_start, flush_period_s=self.flush_period_s,
                    teleop=self.action_source == "teleop", image_format=self.image_format,
                    jpeg_quality=self.jpeg_quality, preroll_s=self.preroll_s)


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
    operator_share: float = 0.0  # the share of the steps a person drove by taking over (QAction intervention)

    @classmethod
    def of_salvage(cls, name: str, got, now_ns: int) -> "EpisodeEnd":
        """A salvaged bag's result (data/bag_salvage.py SalvageResult)."""
        return cls(episode_id=name, instruction=got.instruction, success=got.success,
                   reward=1.0 if got.success else 0.0, num_steps=got.num_steps, end_reason=got.end_reason,
                   bag_path=got.bag_path, stamp_ns=got.stamp_ns or now_ns, duration_s=0.0, detail=got.detail)


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


class RecordError(ValueError):
    """A message could not be recorded (malformed bytes, write error); the episode stays open."""
