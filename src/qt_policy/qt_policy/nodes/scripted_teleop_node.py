"""scripted_teleop: a scripted "operator" that teleoperates the simulated arm as a person would a real one.

It publishes an instruction (each one starts an episode, in the sim and in the recorder), then, for
each frame's simulator state (std_msgs/Float64MultiArray on ``raw_obs_topic``, published by the sim
arm with each camera frame), the action of the episode's scripted policy (an expert, or a failure
maker: sim/teleoperator.py) as the commands of the embodiment -- geometry_msgs/TwistStamped on the
twist topic and std_msgs/Float64 on the gripper topic, the interface of an arm behind MoveIt Servo.
It never publishes QAction: the recorder (``action_source: teleop``) makes the training actions from
these commands. The sim's success topic (std_msgs/Bool) ends an episode; after ``pause_s`` the next
one starts. When all are done the node exits (status 0).

    python -m qt_policy.nodes.scripted_teleop_node --ros-args -p tasks:="[drawer-open]" -p episodes_per_task:=5
"""
from __future__ import annotations

import time

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Bool, Float64, Float64MultiArray

from ..paths import resolve_data_path
from ..robot.commands import CommandMap
from ..robot.embodiment import load_embodiment
from ..sim.teleoperator import ScriptedTeleopConfig, ScriptedTeleoperator
from .command_messages import twist_stamped
from .instruction_input import InstructionSender
from .parameters import declare_parameters, read_parameters
from .qos import RELIABLE_10
from .spin import spin_until_signal


class ScriptedTeleopNode(Node):
    def __init__(self):
        super().__init__('scripted_teleop')
        errors = declare_parameters(self, ScriptedTeleopConfig)
        if errors:
            raise ValueError('; '.join(errors))
        cfg = self.config = read_parameters(self, ScriptedTeleopConfig)
        self.operator = ScriptedTeleoperator(cfg.tasks, cfg.episodes_per_task, cfg.expert_fraction, cfg.seed)
        emb = load_embodiment(resolve_data_path(cfg.embodiment))
        self.map = CommandMap(emb)
        self.finished = False
        self._episode = None
        self._started = 0.0
        self._next_start = None
        self.results: list[tuple[str, str, bool]] = []
        self._instructions = InstructionSender(self, cfg.instruction_topic)  # one publisher per episode
        self._twist_pub = self.create_publisher(TwistStamped, emb.twist.topic, RELIABLE_10)
        self._gripper_pub = self.create_publisher(Float64, emb.gripper.topic, RELIABLE_10)
        self.create_subscription(Float64MultiArray, cfg.raw_obs_topic, self._on_raw_obs, qos_profile_sensor_data)
        self.create_subscription(Bool, cfg.success_topic, self._on_success, RELIABLE_10)
        self.create_timer(0.05, self._on_timer)
        self.get_logger().info(f'{len(self.operator.plan)} episodes planned ({cfg.episodes_per_task} per task of '
                               f'{self.operator.tasks}); waiting for {cfg.wait_for}')

    def _on_timer(self):
        if self._episode is not None or self.finished:
            return
        if self._next_start is None:
            names = {n for n, _ in self.get_node_names_and_namespaces()}
            if not set(self.config.wait_for) <= names:
                return
            self._next_start = time.monotonic() + self.config.pause_s
        if time.monotonic() < self._next_start:
            return
        ep = self.operator.next_episode()
        if ep is None:
            done = sum(s for _, _, s in self.results)
            self.get_logger().info(f'all {len(self.results)} episodes done: {done} successes')
            self.finished = True
            return
        self._episode, self._started = ep, time.monotonic()
        self._instructions.send(ep.instruction)
        self.get_logger().info(f'episode {ep.index}: {ep.task} seed {ep.seed} as {ep.kind}')

    def _on_raw_obs(self, msg):
        if self._episode is None or time.monotonic() - self._started < self.config.settle_s:
            return
        command = self.map.group(self.map.to_commands(self.operator.act(msg.data)))
        self._twist_pub.publish(twist_stamped(self.get_clock().now().to_msg(), self.map.embodiment.twist.frame_id,
                                              command.linear, command.angular))
        if command.gripper is not None:
            self._gripper_pub.publish(Float64(data=float(command.gripper)))

    def _on_success(self, msg):
        ep = self._episode
        if ep is None or time.monotonic() - self._started < self.config.settle_s:
            return  # a late message about the previous episode
        self.results.append((ep.task, ep.kind, bool(msg.data)))
        self.get_logger().info(f'episode {ep.index} ({ep.task}, {ep.kind}): success={bool(msg.data)}')
        self._episode = None
        self._next_start = time.monotonic() + self.config.pause_s


def main(args=None) -> int:
    return spin_until_signal('scripted_teleop', ScriptedTeleopNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
