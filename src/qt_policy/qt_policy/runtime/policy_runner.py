"""The policy node's logic without ROS: observations in, an action or a reason to hold out.

`PolicyRunner` keeps the latest instruction embedding, camera frame and robot state with the time
each arrived, and on every control tick (`act(now)`) either decodes an action with the
Q-Transformer or returns `Hold(reason)`: nothing is ever decoded from missing or stale input, so
a robot that loses its camera stops. Times are plain float seconds from one clock chosen by the
caller (the node uses its ROS clock), which makes the staleness logic testable with fake times.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..core.decoding import greedy_decode
from ..core.model import QTransformer
from ..core.text import normalize_instruction
from ..data.dataset import stack_history
from .images import resize_square
from .policy_config import PolicyNodeConfig, resolve_data_path

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

    kind: str  # no_instruction | no_image | camera_stale | no_state | state_stale | error
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

        self.instruction = ""
        self._embedding: np.ndarray | None = None
        self._latest: np.ndarray | None = None  # newest resized frame
        self._latest_time = 0.0
        self._latest_stamp: Any = None
        self._history: deque[np.ndarray] = deque(maxlen=max(cfg.frames, 1))
        self._state: np.ndarray | None = None
        self._state_time = 0.0

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
                   twist_scale=config.twist_scale, gripper_dimension=config.gripper_dimension)

    # ----- inputs --------------------------------------------------------------------------------

    @property
    def needs_camera(self) -> bool:
        return self.model.cfg.image_size > 0

    @property
    def needs_state(self) -> bool:
        return self.model.cfg.state_dim > 0

    def set_instruction(self, text: str, now: float) -> None:
        """Encode once per instruction; an empty one clears it (the robot holds). History is kept."""
        text = normalize_instruction(text or "")
        if not text:
            self.instruction, self._embedding = "", None
            return
        if text == self.instruction and self._embedding is not None:
            return
        emb = np.asarray(self.encoder(text), dtype=np.float32).reshape(-1)
        if emb.shape[0] != self.model.cfg.text_dim:
            raise ValueError(f"instruction encoder gave {emb.shape[0]} values, the model expects {self.model.cfg.text_dim}")
        self.instruction, self._embedding = text, emb

    def add_image(self, rgb: np.ndarray, now: float, stamp: Any = None) -> None:
        """Keep the newest frame, centre-cropped and resized to the model's square input."""
        if not self.needs_camera:
            return
        self._latest = resize_square(rgb, self.model.cfg.image_size)
        self._latest_time = float(now)
        self._latest_stamp = stamp

    def set_state(self, vec: Sequence[float], now: float) -> None:
        state = np.asarray(vec, dtype=np.float32).reshape(-1)
        if state.shape[0] != self.model.cfg.state_dim:
            raise ValueError(f"robot state has {state.shape[0]} values, the model expects {self.model.cfg.state_dim}")
        if not np.all(np.isfinite(state)):
            raise ValueError("robot state contains NaN or inf")
        self._state, self._state_time = state, float(now)

    # ----- one control tick ----------------------------------------------------------------------

    def check(self, now: float) -> Hold | None:
        """The reason not to act now, or None when every input is present and fresh."""
        if self._embedding is None:
            return Hold("no_instruction", "no instruction")
        if self.needs_camera:
            if self._latest is None:
                return Hold("no_image", "no camera image yet")
            age = now - self._latest_time
            if age > self.stale_timeout_s:
                return Hold("camera_stale", f"camera stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
        if self.needs_state:
            if self._state is None:
                return Hold("no_state", "no robot state yet")
            age = now - self._state_time
            if age > self.stale_timeout_s:
                return Hold("state_stale", f"state stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
        return None

    def act(self, now: float) -> Action | Hold:
        """Decide at time `now`. Never raises: a model failure becomes Hold('error', ...).

        The frame history advances once per decision, not once per camera message: training windows
        are consecutive control steps (data.dataset.frame_window), so a 30 Hz camera must not make
        the history 33 ms deep. The first decision pads the history with its own frame.
        """
        hold = self.check(now)
        if hold is not None:
            return hold
        t0 = time.perf_counter()
        try:
            cfg = self.model.cfg
            images = None
            if self.needs_camera:
                self._history.append(self._latest)
                images = torch.from_numpy(stack_history(self._history, cfg.frames)[None]).to(self.device)
            text = torch.from_numpy(self._embedding[None]).to(self.device)
            state = torch.from_numpy(self._state[None]).to(self.device) if self.needs_state else None
            out = greedy_decode(self.model, images, text, state)
            values = np.clip(out.values[0].float().cpu().numpy(), self.low, self.high).astype(np.float32)
            bins = out.bins[0].cpu().numpy().astype(np.int64)
            q = float(out.q_value[0])
        except Exception as exc:  # noqa: BLE001 - a bad tick must hold the robot, never kill the node
            return Hold("error", f"policy error: {type(exc).__name__}: {exc}")
        latency_ms = (time.perf_counter() - t0) * 1000.0
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
