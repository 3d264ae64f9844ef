"""One episode in memory: what the recorder and the simulator's generator write, and training reads."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: why a recording ended (the recorder's rules and faults, runtime/episode_recorder.py; 'refused': nothing
#: was recorded; 'imported': qt-import-bags; 'interrupted': a salvaged bag whose recorder was killed)
RECORDER_END_REASONS = ("service", "terminate", "success_topic", "timeout", "shutdown", "preempted",
                        "disk_full", "write_error", "interrupted", "refused", "imported")
#: every end_reason an episode can carry: the recorder's, the simulator's own episodes ('success' or
#: 'timeout', sim/collect.py) and a LeRobot dataset read as episodes ('lerobot')
END_REASONS = RECORDER_END_REASONS + ("success", "lerobot")


@dataclass
class EpisodeData:
    """Step t pairs the observation seen before acting (images[t], states[t]) with the action taken.

    Rewards are sparse: 1 on the last step of a successful episode (the first success ends it), else 0.
    """

    instruction: str
    images: np.ndarray  # (T, H, W, 3) uint8 RGB; with K >= 2 cameras (T, K, H, W, 3), the embodiment's order
    actions: np.ndarray  # (T, d) float32, continuous, as executed
    success: bool
    action_names: list[str] = field(default_factory=list)
    states: np.ndarray | None = None  # (T, S) float32 robot state, optional
    state_names: list[str] = field(default_factory=list)
    episode_id: str = ""
    end_reason: str = ""
    task: str = ""  # free-form metadata, e.g. the simulator task name
    embodiment: dict | None = None  # the robot's embodiment (robot/embodiment.py) when the recorder knew it
    # (T,) bool: the steps a person drove by taking over from the policy (QAction.intervention); None = none
    interventions: np.ndarray | None = None

    def __post_init__(self):
        t = len(self.actions)
        if self.images.ndim not in (4, 5) or self.images.shape[-1] != 3 or self.images.dtype != np.uint8 or (
                self.images.ndim == 5 and self.images.shape[1] < 2):
            raise ValueError(f"images must be (T, H, W, 3) or, with K >= 2 cameras, (T, K, H, W, 3) uint8, "
                             f"got {self.images.shape} {self.images.dtype}")
        if len(self.images) != t:
            raise ValueError(f"{len(self.images)} images for {t} actions")
        if self.states is not None and len(self.states) != t:
            raise ValueError(f"{len(self.states)} states for {t} actions")
        if self.interventions is not None and len(self.interventions) != t:
            raise ValueError(f"{len(self.interventions)} intervention flags for {t} actions")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def num_cameras(self) -> int:
        return self.images.shape[1] if self.images.ndim == 5 else 1

    def camera(self, k: int) -> np.ndarray:
        """Camera k's frames, (T, H, W, 3)."""
        if not 0 <= k < self.num_cameras:
            raise IndexError(f"camera {k} of an episode with {self.num_cameras}")
        return self.images[:, k] if self.images.ndim == 5 else self.images

    @property
    def operator_steps(self) -> int:
        """The steps a person drove by taking over."""
        return int(np.sum(self.interventions)) if self.interventions is not None else 0

    @property
    def operator_share(self) -> float:
        """The share of the steps a person drove by taking over (EpisodeResult.operator_share)."""
        return self.operator_steps / len(self) if len(self) else 0.0

    @property
    def rewards(self) -> np.ndarray:
        r = np.zeros(len(self), dtype=np.float32)
        if self.success and len(self):
            r[-1] = 1.0
        return r
