"""scripted_operator: a scripted person in the loop on the simulated arm (issue 40).

It watches the policy drive: each instruction is a new episode; after `patience` simulator states (one per
frame, `raw_obs_topic`) without success it sends the scripted expert's commands (sim/operator.py) on the
policy node's operator topics, so the policy node's mux hands the robot to it, until the success topic ends
the episode. What it drove (from which frame, how many commands) goes to `record_path`, one JSON line per
episode, to check the recorder's flags against.

    python -m qt_policy.nodes.scripted_operator_node --ros-args -p patience:=60 -p record_path:=/tmp/person.jsonl
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Bool, Float64, Float64MultiArray

from ..paths import resolve_data_path
from ..robot.commands import CommandMap
from ..robot.embodiment import load_embodiment
from ..sim.operator import ScriptedOperator, ScriptedOperatorConfig
from ..sim.tasks import task_for_instruction
from .command_messages import twist_stamped
from .instruction_input import subscribe_instructions
from .parameters import declare_parameters, read_parameters
from .qos import RELIABLE_10
from .spin import spin_until_signal


class ScriptedOperatorNode(Node):
    def __init__(self):
        super().__init__('scripted_operator')
        errors = declare_parameters(self, ScriptedOperatorConfig)
        if errors:
            raise ValueError('; '.join(errors))
        cfg = self.config = read_parameters(self, ScriptedOperatorConfig)
        self.map = CommandMap(load_embodiment(resolve_data_path(cfg.embodiment)))
        self._person: ScriptedOperator | None = None
        self._episode: dict | None = None
        self._twist_pub = self.create_publisher(TwistStamped, cfg.operator_twist_topic, RELIABLE_10)
        self._gripper_pub = self.create_publisher(Float64, cfg.operator_gripper_topic, RELIABLE_10)
        subscribe_instructions(self, cfg.instruction_topic, self._on_instruction)
        self.create_subscription(Float64MultiArray, cfg.raw_obs_topic, self._on_raw_obs, qos_profile_sensor_data)
        self.create_subscription(Bool, cfg.success_topic, self._on_success, RELIABLE_10)
        self.get_logger().info(f'a scripted person takes over after {cfg.patience} frames without success')

    def _on_instruction(self, instruction, _raw):
        self._finish()
        if not instruction.text:
            return
        task = task_for_instruction(instruction.text)
        self._person = ScriptedOperator(task, self.config.patience, self.config.seed)
        self._person.reset(1)
        self._episode = {"instruction": instruction.text, "task": task.name, "frames": 0, "took_over_at": None,
                         "commands": 0, "started": time.monotonic()}

    def _on_raw_obs(self, msg):
        ep = self._episode
        if ep is None or time.monotonic() - ep["started"] < self.config.settle_s:
            return
        action = self._person(0, SimpleNamespace(raw_obs=np.asarray(msg.data, dtype=np.float64)), ep["frames"])
        ep["frames"] += 1
        if action is None:
            return
        if ep["took_over_at"] is None:
            ep["took_over_at"] = ep["frames"] - 1
            self.get_logger().info(f'taking over {ep["task"]} at frame {ep["took_over_at"]}')
        command = self.map.group(self.map.to_commands(action))
        self._twist_pub.publish(twist_stamped(self.get_clock().now().to_msg(), self.map.embodiment.twist.frame_id,
                                              command.linear, command.angular))
        if command.gripper is not None:
            self._gripper_pub.publish(Float64(data=float(command.gripper)))
        ep["commands"] += 1

    def _on_success(self, msg):
        if self._episode is not None and time.monotonic() - self._episode["started"] >= self.config.settle_s:
            self._episode["success"] = bool(msg.data)
            self._finish()

    def _finish(self):
        """The episode is over: write what the person drove."""
        ep, self._episode = self._episode, None
        if ep is None or not self.config.record_path:
            return
        ep.pop("started")
        with open(self.config.record_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(ep) + '\n')


def main(args=None) -> int:
    return spin_until_signal('scripted_operator', ScriptedOperatorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
