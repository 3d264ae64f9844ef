"""sim_arm: the Meta-World Sawyer (`sim.arm.SimArm`) as a ROS 2 robot with a camera.

* An instruction (std_msgs/String, reliable + transient-local) starts an episode: the arm resets to
  the task whose instruction it is (`sim.tasks.task_for_instruction`; or to the `task` parameter when
  set) with placement seed ``seed + k`` for the k-th episode *of that task* (k = 0, 1, ...; the
  default seed 1000 keeps these placements apart from the training seeds 0..999), as the evaluation
  CLI seeds each task (`tools.evaluate --seed-start`), so both paths can run the same placements. An unknown instruction: one error line
  listing the known instructions, the arm stays idle.
* The reset observation is published at once, and the timer starts its period again from the reset:
  a decision made on that frame is applied at the next tick, as in the data (action t from
  observation t, applied at step t+1), whatever the timers' phases were before.
* At ``rate_hz`` a timer applies the latest qt_msgs/QAction received since the last tick (``values``,
  clipped to [-1, 1] by the arm) -- no new action, no motion -- then publishes the camera
  (sensor_msgs/Image rgb8, header.stamp = now, frame_id 'camera') and the robot state
  (sensor_msgs/JointState: hand_x, hand_y, hand_z, gripper_opening). Actions that arrive faster than
  the rate are superseded (counted in the episode's log line).
* At the first success it publishes std_msgs/Bool True on ``success_topic``; after ``max_steps``
  applied actions (0 = the task's budget) False. Either way the episode is over: actions are ignored
  until the next instruction (the camera keeps publishing).
* An action whose header.stamp is older than the reset (decided from a frame of the previous scene)
  is ignored, as the recorder ignores it (its ``drop_actions_before_start``).
* A malformed action (wrong length, NaN/inf) is ignored with a warning.
* With ``action_input: commands``, the interface of a real arm behind MoveIt Servo instead: geometry_msgs/TwistStamped on the embodiment's
  twist topic and std_msgs/Float64 on its gripper topic (config/embodiments/metaworld_sawyer.yaml).
  Once a command has arrived in an episode, every tick is a step: the twist applied is the
  time-weighted mean of the twists in force since the last frame was published (each in force until the next, or
  command_timeout_s), the gripper the latest command (robot/command_window.py), inverted to the
  arm's action by the embodiment (robot/commands.py) -- the exact inverse of what the policy node
  sends. Commands received before the episode's reset are forgotten.
* ``raw_obs_topic`` (std_msgs/Float64MultiArray): the simulator's full state with each frame, for a
  scripted teleoperator (nodes/scripted_teleop_node.py); a real robot has no such topic.

`SimArmDriver` holds all of that without ROS (testable with a fake arm); `SimArmNode` is the adapter.

    python -m qt_policy.nodes.sim_arm_node --ros-args --params-file config/sim_arm.yaml
"""
from __future__ import annotations

import array
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..runtime.policy_config import DEFAULT_EMBODIMENT
from ..sim.arm import ACTION_NAMES, STATE_NAMES, SimObservation

MALFORMED_LOG_PERIOD_S = 10.0


@dataclass
class SimArmNodeConfig:
    """Parameters of the sim_arm node (config/sim_arm.yaml names exactly these fields)."""

    task: str = ""  # Meta-World task name (sim.tasks.TASKS); '' = the task of each instruction
    image_size: int = 64  # rendered camera image, square pixels (the shipped model uses 64)
    rate_hz: float = 10.0  # simulation / camera rate: one action applied per tick at most
    seed: int = 1000  # episode k of a task uses placement seed + k (training data uses seeds 0..999)
    max_steps: int = 0  # applied actions before the episode fails; 0 = the task's max_steps
    image_topic: str = "camera/image_raw"  # sensor_msgs/Image rgb8
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
        from ..sim.tasks import get_task

        if self.task:
            get_task(self.task)  # KeyError listing the known names
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
        from ..runtime.policy_config import resolve_data_path

        self.config = config.validate()
        emb = load_embodiment(resolve_data_path(config.embodiment))
        self.commands = CommandMap(emb)
        if self.commands.embodiment.action_names != list(ACTION_NAMES):
            raise ValueError(f"embodiment {emb.name!r} has action dimensions {emb.action_names}; the simulated arm "
                             f"takes {ACTION_NAMES}")
        self._window = CommandWindow(self.commands.is_velocity, self.commands.offset, emb.command_timeout_s)
        self._commanded = False  # a command arrived in this episode: every tick is a step
        self._window_start = 0.0  # commands from here on move the arm at the next tick: the last frame's time
        if arm is None:
            from ..sim.arm import SimArm

            arm = SimArm(config.image_size)
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
        from ..sim.tasks import TASKS, get_task, task_for_instruction

        text = " ".join(str(text).split())
        if not text:
            self.active, self._pending = False, None
            return "empty instruction: arm idle"
        if self.config.task:
            task = get_task(self.config.task)
            note = "" if text.lower() == task.instruction else f" (fixed task; instruction {text!r} not checked)"
        else:
            try:
                task = task_for_instruction(text)
            except KeyError:
                self.active, self._pending = False, None
                known = ", ".join(repr(t.instruction) for t in TASKS.values())
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
            if a.shape != (len(ACTION_NAMES),):
                raise ValueError(f"{a.size} values, expected {len(ACTION_NAMES)} {ACTION_NAMES}")
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


# ----- ROS adapter -------------------------------------------------------------------------------------

def _make_node_class():
    from rclpy.node import Node
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Bool, Float64, Float64MultiArray, String

    from qt_msgs.msg import QAction

    from ..runtime.policy_config import declare_parameters, read_parameters
    from .qos import LATCHED, RELIABLE_10, SENSOR_PUBLISHER

    instruction_qos, reliable_10, sensor_pub_qos = LATCHED, RELIABLE_10, SENSOR_PUBLISHER

    class SimArmNode(Node):
        def __init__(self, arm=None, **kwargs):
            super().__init__('sim_arm', **kwargs)
            errors = declare_parameters(self, SimArmNodeConfig)
            if errors:
                raise ValueError('; '.join(errors))
            cfg = read_parameters(self, SimArmNodeConfig)
            self.driver = SimArmDriver(cfg, arm=arm)
            self.config = cfg
            self._image_pub = self.create_publisher(Image, cfg.image_topic, sensor_pub_qos)
            self._state_pub = self.create_publisher(JointState, cfg.state_topic, sensor_pub_qos)
            self._success_pub = self.create_publisher(Bool, cfg.success_topic, reliable_10)
            self.create_subscription(String, cfg.instruction_topic, self._on_instruction, instruction_qos)
            self._raw_obs_pub = self.create_publisher(Float64MultiArray, cfg.raw_obs_topic, sensor_pub_qos)
            emb = self.driver.commands.embodiment
            if cfg.action_input == 'qaction':
                self.create_subscription(QAction, cfg.action_topic, self._on_action, reliable_10)
                inputs = self.resolve_topic_name(cfg.action_topic)
            else:
                self.create_subscription(TwistStamped, emb.twist.topic, self._on_twist, reliable_10)
                self.create_subscription(Float64, emb.gripper.topic, self._on_gripper, reliable_10)
                inputs = (self.resolve_topic_name(emb.twist.topic) + ' + '
                          + self.resolve_topic_name(emb.gripper.topic))
            self._timer = self.create_timer(1.0 / cfg.rate_hz, self._on_tick)
            self.get_logger().info(
                f'sim arm ready: {cfg.image_size}px camera at {cfg.rate_hz:g} Hz, task '
                f'{cfg.task or "from the instruction"}, seeds from {cfg.seed}, actions from {inputs}; waiting for an '
                f'instruction on {self.resolve_topic_name(cfg.instruction_topic)}')

        def _on_instruction(self, msg):
            try:
                line = self.driver.on_instruction(msg.data, self.get_clock().now().nanoseconds)
            except Exception as exc:  # noqa: BLE001 - e.g. a Meta-World error: report, stay up
                self.driver.active = False
                self.get_logger().error(f'cannot start an episode for {msg.data!r}: {type(exc).__name__}: {exc}')
                return
            if line.startswith('error:'):
                self.get_logger().error(line[len('error:'):].strip())
                return
            self.get_logger().info(line)
            if self.driver.active and self.driver.arm.task_name is not None:
                self._timer.reset()  # the next step comes one period after this frame
                self._publish_observation(self.driver.arm.observation)

        def _on_action(self, msg):
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            warning = self.driver.on_action(list(msg.values), stamp_ns)
            if warning:
                self.get_logger().warning(warning)

        def _now_s(self) -> float:
            return self.get_clock().now().nanoseconds * 1e-9

        def _on_twist(self, msg):
            t = msg.twist
            self._warn(self.driver.on_command('twist', self._now_s(), (t.linear.x, t.linear.y, t.linear.z,
                                                                        t.angular.x, t.angular.y, t.angular.z)))

        def _on_gripper(self, msg):
            self._warn(self.driver.on_command('gripper', self._now_s(), (msg.data,)))

        def _warn(self, line):
            if line:
                self.get_logger().warning(line)

        def _on_tick(self):
            try:
                tick = self.driver.tick(self._now_s())
            except Exception as exc:  # noqa: BLE001 - a simulator error ends the episode, not the node
                self.driver.active = False
                self.get_logger().error(f'simulation step failed: {type(exc).__name__}: {exc}; episode stopped')
                return
            if tick.ended is not None:  # before the frame: the recorder closes the episode on this
                self._success_pub.publish(Bool(data=bool(tick.ended)))
                self.get_logger().info(tick.message)
            if tick.observation is not None:
                self._publish_observation(tick.observation)

        def _publish_observation(self, obs: SimObservation):
            now = self.get_clock().now()
            stamp = now.to_msg()
            self.driver.observation_published(now.nanoseconds * 1e-9)
            img = Image()
            img.header.stamp = stamp
            img.header.frame_id = 'camera'
            img.height, img.width = int(obs.image.shape[0]), int(obs.image.shape[1])
            img.encoding = 'rgb8'
            img.is_bigendian = 0
            img.step = img.width * 3
            img.data = array.array('B', np.ascontiguousarray(obs.image, dtype=np.uint8).tobytes())
            self._image_pub.publish(img)
            state = JointState()
            state.header.stamp = stamp
            state.name = list(STATE_NAMES)
            state.position = [float(v) for v in obs.state]
            self._state_pub.publish(state)
            self._raw_obs_pub.publish(Float64MultiArray(data=[float(v) for v in obs.raw_obs]))

    return SimArmNode


def main(args=None) -> int:
    from .spin import spin_until_signal

    return spin_until_signal('sim_arm', lambda: _make_node_class()(), args,
                             on_stop=lambda node, executor: node.driver.arm.close())


if __name__ == '__main__':
    raise SystemExit(main())
