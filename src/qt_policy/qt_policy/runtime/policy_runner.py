"""The policy node's logic without ROS: observations in, an action or a reason to hold out.

`PolicyRunner` keeps the latest instruction embedding, camera frame and robot state with the time
each arrived, and decides with the Q-Transformer or returns `Hold(reason)`: nothing is ever decoded
from missing or stale input, so a robot that loses its camera stops. Times are plain float seconds
from one clock chosen by the caller (the node uses its ROS clock), which makes the logic testable
with fake times.

Decisions are tied to frames, as in the data (action t from observation t): each decision uses a
frame no earlier decision used, and the frame history holds the frames of consecutive decisions.
`on_frame(now)` says whether a frame that just arrived is the one for the next control step (at
most `control_rate_hz` decisions a second; a 30 Hz camera gives every third frame, a 10 Hz one
every frame), so the node decides as soon as that frame is there instead of on a free-running timer.
After a new instruction, frames that arrived within `instruction_settle_s` are not used: they may
still show the scene before it (a simulator resets on the instruction). The robot state of a decision
is the one the data's alignment rule gives (data/bag_format.py): the latest state stamped at or
before the frame; `wait_for_state` waits (briefly) until the state stream has passed the frame's
stamp, since a state taken with the frame often arrives just after it. The timing model is in
README ("Timing").
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.decoding import greedy_decode
from ..core.model import QTransformer
from ..core.text import normalize_instruction
from ..data.observation import FrameHistory, prepare_frame
from .policy_config import PolicyNodeConfig, resolve_data_path

#: longest instruction encoded; the text encoder reads 256 word pieces at most, so longer text only costs time
MAX_INSTRUCTION_CHARS = 4096

Encoder = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class Action:
    """One decision: values are clipped to the configured limits; bins are the model's raw choice."""

    values: np.ndarray  # (d,) float32, within [action_low, action_high]
    bins: np.ndarray  # (d,) int64
    q_value: float  # estimated success probability of this action
    latency_ms: float  # model time for this decision
    image_stamp: Any  # what add_image got as `stamp` for the newest frame used (the node passes the Header)
    instruction: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Hold:
    """No action this tick. `kind` is stable across ticks (for logging transitions), `reason` is for humans."""

    kind: str  # no_instruction | no_image | settling | camera_stale | no_new_frame | no_state | state_stale | error
    reason: str


class PolicyRunner:
    """Model + instruction encoder + the latest observations; `act(now)` is one control tick."""

    def __init__(
        self,
        model: QTransformer,
        encoder: Encoder,
        *,
        action_names: Sequence[str] | None = None,
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
        stale_timeout_s: float = 0.5,
        twist_scale: Sequence[float] = (0.1, 0.1, 0.1),
        gripper_dimension: str = "gripper",
        control_rate_hz: float = 10.0,
        instruction_settle_s: float = 0.05,
    ):
        self.model = model.eval()
        self.encoder = encoder
        cfg = model.cfg
        self.device = next(model.parameters()).device
        self.names = tuple(action_names or cfg.action_names)
        self.low = np.asarray(action_low if action_low else cfg.action_low, dtype=np.float32)
        self.high = np.asarray(action_high if action_high else cfg.action_high, dtype=np.float32)
        for label, seq in (("action_names", self.names), ("action_low", self.low), ("action_high", self.high)):
            if len(seq) != cfg.action_dim:
                raise ValueError(f"{label} has {len(seq)} entries, the model has {cfg.action_dim} action dimensions")
        if np.any(self.low > self.high):
            raise ValueError(f"action_low {self.low.tolist()} exceeds action_high {self.high.tolist()}")
        if len(twist_scale) != 3:
            raise ValueError(f"twist_scale needs 3 values (dx, dy, dz), got {list(twist_scale)}")
        self.stale_timeout_s = float(stale_timeout_s)
        self.twist_scale = np.asarray(twist_scale, dtype=np.float32)
        self.gripper_index = self.names.index(gripper_dimension) if gripper_dimension in self.names else None
        self.linear_index = self._linear_dims()

        self.period_s = 1.0 / float(control_rate_hz)
        self.instruction_settle_s = float(instruction_settle_s)
        self._lock = threading.RLock()  # the node calls in from several threads (camera, instruction, timer)
        self.instruction = ""
        self._embedding: np.ndarray | None = None
        self._instruction_time = -np.inf
        self._latest: np.ndarray | None = None  # newest prepared frame
        self._latest_time = 0.0  # when it arrived
        self._latest_stamp: Any = None
        self._latest_stamp_s: float | None = None  # its capture time, when the caller knows it on our clock
        self._frame_seq = 0  # frames received
        self._used_seq = 0  # the frame of the last decision
        self._next_due: float | None = None  # when the next control step's frame is due
        self._frame_interval: float | None = None  # the camera's period (running mean of arrival gaps)
        self._history = FrameHistory(cfg.frames)
        self._state: np.ndarray | None = None
        self._state_time = 0.0
        self._states: deque[tuple[float, np.ndarray]] = deque(maxlen=64)  # (capture stamp, state), by stamp
        self._state_cv = threading.Condition(self._lock)

    @classmethod
    def from_config(cls, config: PolicyNodeConfig, encoder: Encoder | None = None) -> "PolicyRunner":
        """Load the checkpoint named in the config; the default encoder is all-MiniLM-L6-v2 (offline).

        Also sets torch's intra-op thread count (process-wide) when config.torch_threads > 0: with
        batch-1 decoding on a shared CPU, more threads mostly add tail latency (measured: 2 threads
        p90 > 500 ms under load, 1 thread p90 ~15 ms).
        """
        from ..core.checkpoint import load_policy_model

        config.validate()
        if config.torch_threads > 0:
            torch.set_num_threads(config.torch_threads)
        path = resolve_data_path(config.checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {config.checkpoint!r} not found (looked at {path})")
        model = load_policy_model(path, device=config.device)  # a checkpoint or an ensemble of them
        if encoder is None:
            from ..core.text import shared_encoder

            encoder = shared_encoder()
        return cls(model, encoder, action_names=config.action_names, action_low=config.action_low,
                   action_high=config.action_high, stale_timeout_s=config.stale_timeout_s,
                   twist_scale=config.twist_scale, gripper_dimension=config.gripper_dimension,
                   control_rate_hz=config.control_rate_hz, instruction_settle_s=config.instruction_settle_s)

    # ----- inputs --------------------------------------------------------------------------------

    @property
    def needs_camera(self) -> bool:
        return self.model.cfg.image_size > 0

    @property
    def needs_state(self) -> bool:
        return self.model.cfg.state_dim > 0

    def set_instruction(self, text: str, now: float) -> None:
        """Encode once per instruction (outside the lock: a long text must not hold up decisions); an
        empty one clears it (the robot holds). Every instruction is a new episode, as for the recorder
        and the simulator (the same text again too, without encoding it again): the frame history
        starts again, from frames that arrive after the settle time."""
        text = normalize_instruction(text or "")[:MAX_INSTRUCTION_CHARS]
        if not text:
            with self._lock:
                self.instruction, self._embedding = "", None
            return
        with self._lock:
            emb = self._embedding if text == self.instruction else None
        if emb is None:
            emb = np.asarray(self.encoder(text), dtype=np.float32).reshape(-1)
        if emb.shape[0] != self.model.cfg.text_dim:
            raise ValueError(f"instruction encoder gave {emb.shape[0]} values, the model expects {self.model.cfg.text_dim}")
        with self._lock:
            self.instruction, self._embedding = text, emb
            self._instruction_time = float(now)
            self._history.clear()
            self._next_due = None

    def add_image(self, rgb: np.ndarray, now: float, stamp: Any = None, stamp_s: float | None = None) -> None:
        """Keep the newest frame, prepared for the model (data.observation.prepare_frame, the rule the
        training cache used). `now`: when it arrived; `stamp_s`: when it was taken, on the same clock
        (the stale check then uses the older of the two)."""
        if not self.needs_camera:
            return
        prepared = prepare_frame(rgb, self.model.cfg.image_size, self.model.cfg.image_crop)  # outside the lock
        with self._lock:
            gap = float(now) - self._latest_time
            if self._latest is not None and 0.0 < gap < 1.0:
                self._frame_interval = gap if self._frame_interval is None else \
                    0.9 * self._frame_interval + 0.1 * gap
            self._latest = prepared
            self._latest_time = float(now)
            self._latest_stamp = stamp
            self._latest_stamp_s = None if stamp_s is None else float(stamp_s)
            self._frame_seq += 1

    def set_state(self, vec: Sequence[float], now: float, stamp_s: float | None = None) -> None:
        """`stamp_s`: when the state was measured, on the frames' clock (None: unknown, the latest is used)."""
        state = np.asarray(vec, dtype=np.float32).reshape(-1)
        if state.shape[0] != self.model.cfg.state_dim:
            raise ValueError(f"robot state has {state.shape[0]} values, the model expects {self.model.cfg.state_dim}")
        if not np.all(np.isfinite(state)):
            raise ValueError("robot state contains NaN or inf")
        with self._lock:
            self._state, self._state_time = state, float(now)
            if stamp_s is not None:
                if self._states and stamp_s < self._states[-1][0]:
                    self._states.clear()  # the clock went back (a new run of a recording, a sim reset)
                self._states.append((float(stamp_s), state))
            self._state_cv.notify_all()

    def wait_for_state(self, timeout: float) -> bool:
        """Until a state stamped at or after the newest frame has arrived (then the state of that frame
        is known for sure), at most `timeout` s; True if it did. Immediately True when the model has no
        state or the stamps are unknown."""
        with self._lock:
            return self._state_cv.wait_for(self._state_caught_up, timeout=timeout)

    def _state_caught_up(self) -> bool:
        if not self.needs_state or self._latest_stamp_s is None or not self._states:
            return True
        return self._states[-1][0] >= self._latest_stamp_s

    def _state_for_frame(self) -> np.ndarray:
        """The latest state stamped at or before the frame (the data's alignment rule), else the newest."""
        if self._latest_stamp_s is None or not self._states:
            return self._state
        stamps = [t for t, _ in self._states]
        k = bisect.bisect_right(stamps, self._latest_stamp_s + 1e-9) - 1
        return self._states[max(k, 0)][1]

    # ----- one control tick ----------------------------------------------------------------------

    def _frame_age(self, now: float) -> float:
        if self._latest_stamp_s is None:
            return now - self._latest_time
        return now - min(self._latest_time, self._latest_stamp_s)

    def check(self, now: float) -> Hold | None:
        """The reason not to act now, or None when every input is present and fresh."""
        with self._lock:
            if self._embedding is None:
                return Hold("no_instruction", "no instruction")
            if self.needs_camera:
                if self._latest is None:
                    return Hold("no_image", "no camera image yet")
                age = self._frame_age(now)
                if age > self.stale_timeout_s:
                    return Hold("camera_stale", f"camera stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
            if self.needs_state:
                if self._state is None:
                    return Hold("no_state", "no robot state yet")
                age = now - self._state_time
                if age > self.stale_timeout_s:
                    return Hold("state_stale", f"state stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
            return None

    def on_frame(self, now: float) -> bool:
        """Is the newest frame the one for the next control step? (Then decide now.) The frame nearest
        the step's due time is taken: one that arrives more than half a camera period (at most a
        quarter control period) early is skipped; a step late by half a period or more restarts the
        schedule."""
        with self._lock:
            if self._frame_seq == self._used_seq:
                return False
            slack = 0.25 * self.period_s
            if self._frame_interval is not None:
                slack = min(slack, 0.5 * self._frame_interval)
            if self._next_due is not None and now < self._next_due - slack:
                return False
            return True

    def act(self, now: float) -> Action | Hold:
        """Decide at time `now` from the newest frame. Never raises: a model failure becomes
        Hold('error', ...). A frame an earlier decision used is never used again (Hold 'no_new_frame'):
        the history advances once per decision, with the frames of consecutive control steps
        (data.dataset.frame_window), and the first decision of an episode pads it with its own frame.
        """
        with self._lock:
            hold = self.check(now)
            if hold is not None:
                return hold
            if self.needs_camera:
                if self._latest_time < self._instruction_time + self.instruction_settle_s:
                    return Hold("settling", "waiting for a frame taken after the instruction")
                if self._frame_seq == self._used_seq:
                    return Hold("no_new_frame", "no camera frame since the last decision")
            t0 = time.perf_counter()
            try:
                cfg = self.model.cfg
                images = None
                if self.needs_camera:
                    window = self._history.push(self._latest)
                    self._used_seq = self._frame_seq
                    images = torch.from_numpy(window[None]).to(self.device)
                text = torch.from_numpy(self._embedding[None]).to(self.device)
                state = torch.from_numpy(self._state_for_frame()[None]).to(self.device) if self.needs_state else None
                out = greedy_decode(self.model, images, text, state)
                values = np.clip(out.values[0].float().cpu().numpy(), self.low, self.high).astype(np.float32)
                bins = out.bins[0].cpu().numpy().astype(np.int64)
                q = float(out.q_value[0])
            except Exception as exc:  # noqa: BLE001 - a bad tick must hold the robot, never kill the node
                return Hold("error", f"policy error: {type(exc).__name__}: {exc}")
            latency_ms = (time.perf_counter() - t0) * 1000.0
            arrived, due = self._latest_time, self._next_due  # the schedule follows the frames' arrival
            self._next_due = due + self.period_s if due is not None and arrived < due + 0.5 * self.period_s \
                else arrived + self.period_s
            return Action(values, bins, q, latency_ms, self._latest_stamp, self.instruction, self.names)

    # ----- outputs -------------------------------------------------------------------------------

    def _linear_dims(self) -> list[int | None]:
        """Indices of the dx, dy, dz dimensions: by name, else the first non-gripper dimensions."""
        if all(n in self.names for n in ("dx", "dy", "dz")):
            return [self.names.index(n) for n in ("dx", "dy", "dz")]
        rest = [i for i in range(len(self.names)) if i != self.gripper_index][:3]
        return rest + [None] * (3 - len(rest))

    def twist_and_gripper(self, values: Sequence[float]) -> tuple[np.ndarray, float | None]:
        """Action values -> (linear velocity xyz in m/s, gripper position command in [-1, 1] or None)."""
        values = np.asarray(values, dtype=np.float32)
        linear = np.array([values[i] if i is not None else 0.0 for i in self.linear_index], dtype=np.float32)
        gripper = None
        if self.gripper_index is not None:
            gripper = float(np.clip(values[self.gripper_index], -1.0, 1.0))
        return linear * self.twist_scale, gripper
