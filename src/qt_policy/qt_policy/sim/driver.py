"""The simulated arm's episodes without ROS: instructions, actions or commands in, observations out.

`SimArmDriver` is everything nodes/sim_arm_node.py does except the messages (the rules are in that
node's docstring); the node is its adapter, and tests drive it with a fake arm and explicit times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..paths import DEFAULT_EMBODIMENT
from ..runtime.instruction_gate import normalize
from .arm import SimObservation
from .arms import SUITES

MALFORMED_LOG_PERIOD_S = 10.0


@dataclass
class SimArmNodeConfig:
    """Parameters of the sim_arm node (config/sim_arm.yaml names exactly these fields)."""

    simulator: str = "metaworld"  # metaworld (the Sawyer, 4-D, one camera) | robosuite (the Panda, 7-D, two cameras)
    task: str = ""  # the simulator's task name (sim.tasks.get_task); '' = the task of each instruction
    image_size: int = 64  # rendered camera image, square pixels (the shipped model uses 64)
    rate_hz: float = 10.0  # simulation / camera rate: one action applied per tick at most
    seed: int = 1000  # episode k of a task uses placement seed + k (training data uses seeds 0..999)
    max_steps: int = 0  # applied actions before the episode fails; 0 = the task's max_steps
    image_topic: str = "camera/image_raw"  # sensor_msgs/Image rgb8 of the first camera (others: the embodiment's topics)
    state_topic: str = "robot_state"  # sensor_msgs/JointState
    action_topic: str = "qt/action"  # qt_msgs/QAction in (reliable, depth 10)
    instruction_topic: str = "instruction"  # std_msgs/String in (reliable + transient-local)
    success_topic: str = "success"  # std_msgs/Bool out: True on success, False at max_steps
    raw_obs_topic: str = "sim/raw_obs"  # std_msgs/Float64MultiArray out: Meta-World's 39-D obs (scripted teleoperators)
    # qaction: apply qt_msgs/QAction values; commands: TwistStamped + Float64 gripper, as `embodiment`
    # maps them (a real arm behind MoveIt Servo). One at a time: a robot has one command input.
    action_input: str = "qaction"
    embodiment: str = DEFAULT_EMBODIMENT

    def validate(self) -> "SimArmNodeConfig":
        from .tasks import get_task

        if self.simulator not in SUITES:
            raise ValueError(f"parameter 'simulator' must be one of {SUITES}, got {self.simulator!r}")
        if self.task and get_task(self.task).suite != self.simulator:  # KeyError listing the known names
            raise ValueError(f"task {self.task!r} is not a {self.simulator} task")
        if self.image_size <= 0:
            raise ValueError(f"parameter 'image_size' must be > 0, got {self.image_size}")
        if not self.rate_hz > 0:
            raise ValueError(f"parameter 'rate_hz' must be > 0, got {self.rate_hz}")
        if self.max_steps < 0:
            raise ValueError(f"parameter 'max_steps' must be >= 0, got {self.max_steps}")
        if self.action_input not in ("qaction", "commands"):
            raise ValueError(f"parameter 'action_input' must be 'qaction' or 'commands', got {self.action_input!r}")
        return self


@dataclass(frozen=True)
class Tick:
    """What one timer tick produced: the observation to publish and the episode's end, if it ended now."""

    observation: SimObservation | None  # None before the first reset
    ended: bool | None = None  # True: success now; False: max_steps reached now; None: nothing ended
    message: str = ""


class SimArmDriver:
    """Episode bookkeeping around a SimArm, without ROS. Times are not needed: the caller ticks it."""

    def __init__(self, config: SimArmNodeConfig, arm=None, log: Callable[[str, str], None] | None = None):
        from ..robot.command_window import CommandWindow
        from ..robot.commands import CommandMap
        from ..robot.embodiment import load_embodiment
        from ..paths import resolve_data_path

        self.config = config.validate()
        emb = load_embodiment(resolve_data_path(config.embodiment))
        self.commands = CommandMap(emb)
        if arm is None:
            from .arms import make_arm

            arm = make_arm(config.simulator, config.image_size)
        if emb.action_names != list(arm.action_names):
            raise ValueError(f"embodiment {emb.name!r} has action dimensions {emb.action_names}; the simulated arm "
                             f"takes {list(arm.action_names)}")
        self._window = CommandWindow(self.commands.is_velocity, self.commands.offset, emb.command_timeout_s)
        self._commanded = False  # a command arrived in this episode: every tick is a step
        self._window_start = 0.0  # commands from here on move the arm at the next tick: the last frame's time
        self.arm = arm
        self.log = log or (lambda level, message: None)
        self.episode = -1  # index of the current/last episode (all tasks)
        self.seed = 0  # placement seed of the current/last episode
        self._task_episodes: dict[str, int] = {}  # episodes started per task
        self.active = False  # actions are applied only while True
        self.task = None
        self.max_steps = 0
        self.steps = 0
        self.superseded = 0
        self.stale = 0
        self.reset_stamp_ns = 0
        self._pending: np.ndarray | None = None
        self._malformed = 0
        self._malformed_unlogged = 0
        self._malformed_last_log = -1e9

    def on_instruction(self, text: str, now_ns: int = 0) -> str:
        """Reset for `text` at time `now_ns`; returns the log line (an error line starts with 'error:')."""
        from .tasks import all_tasks, get_task, task_for_instruction

        text = normalize(text)
        if not text:
            self.active, self._pending = False, None
            return "empty instruction: arm idle"
        if self.config.task:
            task = get_task(self.config.task)
            note = "" if text.lower() == task.instruction else f" (fixed task; instruction {text!r} not checked)"
        else:
            try:
                task = task_for_instruction(text, self.config.simulator)
            except KeyError:
                self.active, self._pending = False, None
                known = ", ".join(repr(t.instruction) for t in all_tasks().values() if t.suite == self.config.simulator)
                return f"error: unknown instruction {text!r}: arm idle; known instructions: {known}"
            note = ""
        self.episode += 1
        k = self._task_episodes.get(task.name, 0)
        seed = self.config.seed + k
        self.arm.reset(task.name, seed)
        self._task_episodes[task.name] = k + 1
        self.seed = seed
        self.task = task
        self.max_steps = self.config.max_steps or task.max_steps
        self.steps, self.superseded, self.stale, self._pending, self.active = 0, 0, 0, None, True
        self.reset_stamp_ns = int(now_ns)
        self._window.clear()
        self._commanded = False
        self._window_start = now_ns * 1e-9
        return f"episode {self.episode}: task {task.name} seed {seed} (max {self.max_steps} steps){note}"

    def on_action(self, values, stamp_ns: int | None = None) -> str | None:
        """Queue an action for the next tick; returns a warning line for a malformed action (rate-limited).

        `stamp_ns` (the action's header.stamp): older than the reset -> ignored (previous scene)."""
        try:
            a = np.asarray(values, dtype=np.float32).reshape(-1)
            names = list(self.arm.action_names)
            if a.shape != (len(names),):
                raise ValueError(f"{a.size} values, expected {len(names)} {names}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"non-finite values {a.tolist()}")
        except (TypeError, ValueError) as exc:
            self._malformed += 1
            self._malformed_unlogged += 1
            now = time.monotonic()
            if now - self._malformed_last_log >= MALFORMED_LOG_PERIOD_S:
                line = f"ignoring malformed action ({self._malformed_unlogged} since last warning): {exc}"
                self._malformed_last_log, self._malformed_unlogged = now, 0
                return line
            return None
        if not self.active:
            return None
        if stamp_ns is not None and stamp_ns < self.reset_stamp_ns:
            self.stale += 1
            return None
        if self._pending is not None:
            self.superseded += 1
        self._pending = a
        return None

    def observation_published(self, t: float) -> None:
        """The frame of time t went out: the next step integrates the commands from t on. (A step is
        instantaneous here and its frame is taken after it, so the motion of a step belongs between two
        frames, as the recorder counts it, not between two timer ticks.)"""
        self._window_start = float(t)

    def on_command(self, kind: str, t: float, values) -> str | None:
        """A TwistStamped (kind 'twist': values = linear xyz + angular xyz) or gripper Float64 ('gripper')
        received at t (s); returns a warning line for a malformed one."""
        values = [float(v) for v in values]
        if not all(np.isfinite(values)):
            return f"ignoring non-finite {kind} command {values}"
        if not self.active or t < self.reset_stamp_ns * 1e-9:
            return None  # idle, or sent before this episode's reset
        if kind == "twist":
            dims, cmd = self.commands.from_twist(values[:3], values[3:])
        else:
            dims, cmd = self.commands.from_gripper(values[0])
        self._window.update(t, dims, cmd)
        self._commanded = True
        return None

    def tick(self, now_s: float | None = None) -> Tick:
        """Apply the pending action (if any, while active), or the commands since the last tick; the
        observation to publish afterwards. `now_s`: the time of this tick (for commands)."""
        if self.arm.task_name is None:
            return Tick(None)
        if self.active and self._commanded and self._pending is None and now_s is not None:
            start = min(self._window_start, now_s)
            self._pending = self.commands.to_action(self._window.step(start, now_s))
            self._window.forget_before(start)
        if not self.active or self._pending is None:
            return Tick(self.arm.observation)
        action, self._pending = self._pending, None
        obs, success = self.arm.step(action)
        self.steps += 1
        if success:
            self.active = False
            return Tick(obs, True, self._summary("success"))
        if self.steps >= self.max_steps:
            self.active = False
            return Tick(obs, False, self._summary(f"failure: max_steps {self.max_steps} reached"))
        return Tick(obs)

    def _summary(self, what: str) -> str:
        extra = f", {self.superseded} superseded actions" if self.superseded else ""
        extra += f", {self.stale} actions from pre-reset frames ignored" if self.stale else ""
        return (f"episode {self.episode} ({self.task.name}, seed {self.seed}): {what} "
                f"after {self.steps} steps{extra}")
