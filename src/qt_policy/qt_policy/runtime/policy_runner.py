"""The policy node's logic without ROS: observations in, an action or a reason to hold out.

`PolicyRunner` keeps the latest instruction embedding, camera frame and robot state with the time each
arrived, and decides with the Q-Transformer or returns `Hold(reason)`: nothing is ever decoded from
missing or stale input, so a robot that loses its camera stops. Times are plain float seconds from one
clock chosen by the caller (the node uses its ROS clock), which makes the logic testable with fake times.

Decisions are tied to frames, as in the data (action t from observation t): each decision uses a frame
no earlier decision used, and the frame history holds the frames of consecutive decisions.
`on_frame(now)` says whether a frame that just arrived is the one for the next control step (at most
`control_rate_hz` decisions a second; a 30 Hz camera gives every third frame, a 10 Hz one every frame).
After a new instruction, frames that arrived within `instruction_settle_s` are not used (they may still
show the scene before it), nor frames stamped before the instruction was sent (`sent_s`): the recorder
does not record actions decided from them. The robot state of a decision is the one the data's alignment
rule gives (data/bag_format.py): the latest state stamped at or before the frame; `wait_for_state` waits
briefly until the state stream has passed the frame's stamp. Several cameras (the embodiment's order):
the first camera's frames drive the decisions, each other camera contributes its frame by the state's
rule, each checked for staleness. An operator's commands (`operator_command`, runtime/takeover.py) take
the policy's place while they keep coming, under the same limits. The timing model: README ("Timing").
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Sequence

import numpy as np

from ..core.discretizer import make_discretizer
from ..core.text import normalize_instruction
from ..codec.stamps import header_seconds
from ..data.alignment import latest_at_or_before
from ..data.observation import FrameHistory, prepare_frame
from ..robot.commands import CommandMap
from ..robot.embodiment import Embodiment
from ..robot.safety import SafetyFilter
from ..robot.steps import StepSchedule
from ..paths import resolve_data_path
from .decision import Action, Hold
from .policy_config import PolicyNodeConfig
from .policy_setup import Encoder, embodiment_for, instruction_encoder
from .takeover import Takeover

#: longest instruction encoded; the text encoder reads 256 word pieces at most, so longer text only costs time
MAX_INSTRUCTION_CHARS = 4096



class PolicyRunner:
    """Model + instruction encoder + the latest observations; `act(now)` is one control tick."""

    def __init__(
        self,
        model,
        encoder: Encoder,
        embodiment: Embodiment,
        *,
        action_low: Sequence[float] | None = None,
        action_high: Sequence[float] | None = None,
        stale_timeout_s: float = 0.5,
        instruction_settle_s: float = 0.05,
        q_floor: float = 0.0,
        enabled: bool = True,
        takeover_release_s: float = 0.0,
    ):
        from ..inference.backends import as_policy

        self.policy = as_policy(model)  # a backend (inference/backends.py); a torch model or ensemble is wrapped
        self.model = getattr(self.policy, "model", self.policy)  # the torch model, or the export's session
        self.encoder = encoder
        cfg = self.policy.cfg
        self.embodiment = embodiment.validate()
        self.names = tuple(embodiment.action_names)
        if len(self.names) != cfg.action_dim:
            raise ValueError(f"the embodiment has {len(self.names)} action dimensions {list(self.names)}, the model "
                             f"{cfg.action_dim}")
        if cfg.image_size and len(embodiment.cameras) != cfg.cameras:
            raise ValueError(f"the embodiment has {len(embodiment.cameras)} camera(s), the model takes {cfg.cameras}")
        self.low = np.asarray(action_low if action_low else embodiment.action_low, dtype=np.float32)
        self.high = np.asarray(action_high if action_high else embodiment.action_high, dtype=np.float32)
        for label, seq in (("action_low", self.low), ("action_high", self.high)):
            if len(seq) != cfg.action_dim:
                raise ValueError(f"{label} has {len(seq)} entries, the model has {cfg.action_dim} action dimensions")
        if np.any(self.low > self.high):
            raise ValueError(f"action_low {self.low.tolist()} exceeds action_high {self.high.tolist()}")
        self.commands = CommandMap(embodiment)
        self.safety = SafetyFilter(embodiment)
        self.takeover = Takeover(self.commands, takeover_release_s)  # an operator's commands win (the mux)
        self._bins = make_discretizer(cfg.action_low, cfg.action_high, cfg.num_bins)  # operator actions as model bins
        self._last_sent: np.ndarray | None = None  # the action values the robot was last sent
        self.stale_timeout_s = float(stale_timeout_s)
        self.q_floor = float(q_floor)
        self.enabled = bool(enabled)
        self.terminated = False  # the policy chose terminate: hold until the next instruction

        self.period_s = 1.0 / embodiment.control_rate_hz
        self.instruction_settle_s = float(instruction_settle_s)
        self._lock = threading.RLock()  # the node calls in from several threads (camera, instruction, timer)
        self.instruction = ""
        self._embedding: np.ndarray | None = None
        self._instruction_time = -np.inf
        self._instruction_sent_s: float | None = None  # frames stamped before it are of the previous scene
        self._latest: np.ndarray | None = None  # newest prepared frame
        self._latest_time = 0.0  # when it arrived
        self._latest_stamp: Any = None
        self._latest_stamp_s: float | None = None  # its capture time, when the caller knows it on our clock
        self._frame_seq = 0  # frames received
        self._used_seq = 0  # the frame of the last decision
        self._schedule = StepSchedule(embodiment.control_rate_hz)
        self._history = FrameHistory(cfg.frames)
        self._state, self._state_time = None, 0.0  # the newest state (np.ndarray) and when it arrived
        self._states: deque[tuple[float, np.ndarray]] = deque(maxlen=64)  # (capture stamp, state), by stamp
        self._state_cv = threading.Condition(self._lock)
        self._pose: np.ndarray | None = None  # end-effector position, for the workspace box
        self._pose_time = 0.0
        # cameras after the first: recent (capture stamp or None, arrival, prepared frame), newest last
        self._other_cameras: list[deque] = [deque(maxlen=16) for _ in range(cfg.cameras - 1)]
        self.last_q = float("nan")  # greedy Q of the last decision (also of one held by the Q floor)

    @classmethod
    def from_config(cls, config: PolicyNodeConfig, encoder: Encoder | None = None) -> "PolicyRunner":
        """Load the checkpoint named in the config; the default encoder is all-MiniLM-L6-v2 (offline).

        Also sets the runtime's intra-op thread count (torch's is process-wide) when config.torch_threads > 0: with
        batch-1 decoding on a shared CPU, more threads mostly add tail latency (measured: 2 threads
        p90 > 500 ms under load, 1 thread p90 ~15 ms).
        """
        from ..inference.backends import load_policy

        config.validate()
        path = resolve_data_path(config.checkpoint)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {config.checkpoint!r} not found (looked at {path})")
        # a checkpoint or an ensemble (torch), or an export (onnxruntime: no torch, no training code)
        policy = load_policy(path, config.backend, config.device, threads=config.torch_threads)
        if encoder is None and config.backend == "torch":
            from ..core.text import shared_encoder

            encoder = shared_encoder()
        elif encoder is None:
            encoder = instruction_encoder(policy.embeddings)
        embodiment = embodiment_for(path, config.embodiment, policy.cfg)
        return cls(policy, encoder, embodiment, action_low=config.action_low, action_high=config.action_high,
                   stale_timeout_s=config.stale_timeout_s, instruction_settle_s=config.instruction_settle_s,
                   q_floor=config.q_floor, enabled=config.start_enabled,
                   takeover_release_s=config.takeover_release_s)

    # ----- inputs --------------------------------------------------------------------------------

    @property
    def needs_camera(self) -> bool:
        return self.model.cfg.image_size > 0

    @property
    def needs_state(self) -> bool:
        return self.model.cfg.state_dim > 0

    def set_instruction(self, text: str, now: float, sent_s: float | None = None) -> None:
        """Encode once per instruction (outside the lock: a long text must not hold up decisions); an
        empty one clears it (the robot holds). Every instruction is a new episode, as for the recorder
        and the simulator (the same text again too, without encoding it again): the frame history
        starts again, from frames that arrive after the settle time and were taken after `sent_s`, when the
        instruction was sent (never later than `now`: a sender's clock ahead cannot hold the robot)."""
        text = normalize_instruction(text or "")[:MAX_INSTRUCTION_CHARS]
        with self._lock:
            self.takeover.release()  # a takeover ends with its episode: the next one starts with the policy
            if not text:
                self.instruction, self._embedding = "", None
                return
            emb = self._embedding if text == self.instruction else None
        if emb is None:
            emb = np.asarray(self.encoder(text), dtype=np.float32).reshape(-1)
        if emb.shape[0] != self.model.cfg.text_dim:
            raise ValueError(f"instruction encoder gave {emb.shape[0]} values, the model expects {self.model.cfg.text_dim}")
        with self._lock:
            self.instruction, self._embedding = text, emb
            self._instruction_time = float(now)
            self._instruction_sent_s = None if sent_s is None else min(float(sent_s), float(now))
            self._history.clear()
            self._schedule.restart()
            self.terminated = False

    @property
    def num_cameras(self) -> int:
        return self.model.cfg.cameras if self.needs_camera else 0

    def add_image(self, rgb: np.ndarray, now: float, stamp: Any = None, stamp_s: float | None = None,
                  camera: int = 0) -> None:
        """Keep the newest frame of `camera` (the embodiment's order), prepared for the model
        (data.observation.prepare_frame, the rule the training shards were written with). `now`: when it arrived;
        `stamp_s`: when it was taken, on the same clock (the stale check then uses the older of the two)."""
        if not self.needs_camera:
            return
        if not 0 <= camera < self.num_cameras:
            raise ValueError(f"camera {camera}: the model takes {self.num_cameras} camera(s)")
        prepared = prepare_frame(rgb, self.model.cfg.image_size, self.model.cfg.image_crop)  # outside the lock
        if camera:
            with self._lock:
                frames = self._other_cameras[camera - 1]
                if frames and stamp_s is not None and frames[-1][0] is not None and stamp_s < frames[-1][0]:
                    frames.clear()  # the clock went back
                frames.append((None if stamp_s is None else float(stamp_s), float(now), prepared))
                self._state_cv.notify_all()
            return
        with self._lock:
            self._schedule.note_frame(now)
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

    def set_ee_position(self, xyz: Sequence[float], now: float) -> None:
        """The end effector's position (for the embodiment's workspace box), in the twist's frame."""
        p = np.asarray(xyz, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"end-effector position must be 3 finite values, got {p.tolist()}")
        with self._lock:
            self._pose, self._pose_time = p, float(now)

    def set_enabled(self, enabled: bool) -> None:
        """The hold input: False holds the robot from the next check on (the node sends a zero twist at
        once); True lets it act again, ramping velocities from zero (the safety limits restart)."""
        with self._lock:
            if enabled and not self.enabled:
                self.safety.reset()
            self.enabled = bool(enabled)

    def wait_for_state(self, timeout: float) -> bool:
        """Until a state (and a frame of every other camera) stamped at or after the newest frame has
        arrived (then what goes with that frame is known for sure), at most `timeout` s; True if it did. Also
        waits when none has come yet (the very first frame's). Immediately True without state and a second
        camera, or when the stamps are unknown (an unstamped state counts once there is one)."""
        with self._lock:
            return self._state_cv.wait_for(lambda: self._state_caught_up() and self._cameras_caught_up(),
                                           timeout=timeout)

    def _state_caught_up(self) -> bool:
        if not self.needs_state or self._latest_stamp_s is None:
            return True
        return self._states[-1][0] >= self._latest_stamp_s if self._states else self._state is not None

    def _cameras_caught_up(self) -> bool:
        if self._latest_stamp_s is None:
            return True
        return all(frames and (frames[-1][0] is None or frames[-1][0] >= self._latest_stamp_s - 1e-9)
                   for frames in self._other_cameras)

    def _other_frame(self, k: int) -> np.ndarray:
        """Camera k's frame for the newest first-camera frame: the latest stamped at or before it (the
        data's alignment rule), else the newest."""
        frames = self._other_cameras[k - 1]
        if self._latest_stamp_s is not None:
            stamped = [i for i, (stamp, _, _) in enumerate(frames) if stamp is not None]
            i = latest_at_or_before([frames[i][0] for i in stamped], self._latest_stamp_s + 1e-9)
            if i is not None:
                return frames[stamped[i]][2]
        return frames[-1][2]

    def _state_for_frame(self) -> np.ndarray:
        """The latest state stamped at or before the frame (the data's alignment rule), else the newest."""
        if self._latest_stamp_s is None or not self._states:
            return self._state
        k = latest_at_or_before([t for t, _ in self._states], self._latest_stamp_s + 1e-9)
        return self._states[0 if k is None else k][1]

    # ----- one control tick ----------------------------------------------------------------------

    def _frame_age(self, now: float) -> float:
        if self._latest_stamp_s is None:
            return now - self._latest_time
        return now - min(self._latest_time, self._latest_stamp_s)

    def check(self, now: float) -> Hold | None:
        """The reason not to act now, or None when every input is present and fresh."""
        with self._lock:
            if not self.enabled:
                return Hold("disabled", "disabled by the hold input (~/enable service or enable topic)")
            if self._embedding is None:
                return Hold("no_instruction", "no instruction")
            if self.terminated:
                return Hold("terminated", "the policy chose terminate: waiting for the next instruction")
            if self.needs_camera:
                if self._latest is None:
                    return Hold("no_image", "no camera image yet")
                age = self._frame_age(now)
                if age > self.stale_timeout_s:
                    return Hold("camera_stale", f"camera stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
                names = [c.name for c in self.embodiment.cameras]
                for k, frames in enumerate(self._other_cameras, start=1):
                    if not frames:
                        return Hold("no_image", f"no image yet from camera {k} ({names[k]!r})")
                    stamp, arrival, _ = frames[-1]
                    age = now - (arrival if stamp is None else min(arrival, stamp))
                    if age > self.stale_timeout_s:
                        return Hold("camera_stale", f"camera {k} ({names[k]!r}) stale ({age:.2f} s > "
                                                    f"{self.stale_timeout_s:g} s)")
            if self.needs_state:
                if self._state is None:
                    return Hold("no_state", "no robot state yet")
                age = now - self._state_time
                if age > self.stale_timeout_s:
                    return Hold("state_stale", f"state stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
            if self.safety.has_box:
                if self._pose is None:
                    return Hold("no_pose", "no end-effector pose yet (the workspace box needs it)")
                age = now - self._pose_time
                if age > self.stale_timeout_s:
                    return Hold("pose_stale", f"end-effector pose stale ({age:.2f} s > {self.stale_timeout_s:g} s)")
            return None

    def on_frame(self, now: float) -> bool:
        """Is the newest frame the one for the next control step? (Then decide now.) The frame nearest
        the step's due time is taken: one that arrives more than half a camera period (at most a
        quarter control period) early is skipped; a step late by half a period or more restarts the
        schedule."""
        with self._lock:
            if self._frame_seq == self._used_seq:
                return False
            return self._schedule.is_due(now)

    def act(self, now: float) -> Action | Hold:
        """Decide at time `now` from the newest frame. Never raises: a model failure becomes
        Hold('error', ...). A frame an earlier decision used is never used again (Hold 'no_new_frame'):
        the history advances once per decision, with the frames of consecutive control steps
        (data.observation.frame_window), and the first decision of an episode pads it with its own frame.
        """
        with self._lock:
            hold = self.check(now)
            if hold is not None:
                return hold
            if self.needs_camera:
                if self._latest_time < self._instruction_time + self.instruction_settle_s:
                    return Hold("settling", "waiting for a frame taken after the instruction")
                taken = header_seconds(self._latest_stamp)
                if self._instruction_sent_s is not None and taken is not None and taken < self._instruction_sent_s:
                    return Hold("settling", "waiting for a frame taken after the instruction was sent")
                if self._frame_seq == self._used_seq:
                    return Hold("no_new_frame", "no camera frame since the last decision")
            t0 = time.perf_counter()
            try:
                images = None
                if self.needs_camera:
                    frame = self._latest
                    if self._other_cameras:  # (K, H, W, 3): the model's camera axis
                        frame = np.stack([frame] + [self._other_frame(k) for k in range(1, self.num_cameras)])
                    window = self._history.push(frame)
                    self._used_seq = self._frame_seq
                    images = window[None]
                state = self._state_for_frame()[None] if self.needs_state else None
                out = self.policy.act(images, self._embedding[None], state)
                values = np.clip(out.values[0], self.low, self.high).astype(np.float32)
                bins = out.bins[0].astype(np.int64)
                q = float(out.q_value[0])
            except Exception as exc:  # noqa: BLE001 - a bad tick must hold the robot, never kill the node
                return Hold("error", f"policy error: {type(exc).__name__}: {exc}")
            latency_ms = (time.perf_counter() - t0) * 1000.0
            self._schedule.taken(self._latest_time)  # the schedule follows the frames' arrival
            self.last_q = q
            source = "operator" if self.takeover.active(now) else "policy"
            if source == "operator":  # the operator drives: same limits, the policy's Q kept for the record
                values = np.clip(self.takeover.action(self._last_sent), self.low, self.high)
                bins = self._bins.to_bins(values[None])[0].astype(np.int64)
            elif q < self.q_floor:
                self.safety.reset()
                return Hold("q_floor", f"greedy Q {q:.3f} below q_floor {self.q_floor:g}")
            command, limited = self.safety.apply(self.commands.to_commands(values), self._pose)
            if limited:  # what the robot is sent is what gets recorded
                values = np.clip(self.commands.to_action(command), self.low, self.high)
            grouped = self.commands.group(command)
            self.terminated = grouped.terminate
            self._last_sent = values
            return Action(values, bins, q, latency_ms, self._latest_stamp, self.instruction, self.names,
                          grouped, tuple(limited), source)

    def operator_command(self, dims, values, now: float) -> None:
        """An operator's command message (codec/commands.command_values): it drives from the next tick."""
        with self._lock:
            self.takeover.command(dims, values, now)

    def hold_released(self) -> None:
        """The robot was held (zero twist sent): velocity limits ramp from zero again."""
        with self._lock:
            self.safety.reset()
