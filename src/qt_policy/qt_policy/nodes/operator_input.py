"""An operator's commands into the policy node (the mux, runtime/takeover.py): one subscription per kind
of command the robot takes (twist, gripper, joints), each message read by the recorder's own rule
(codec/commands.py) and handed to the runner; a message that sets nothing usable is logged and dropped."""
from __future__ import annotations

from typing import Callable

from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory

from ..codec.commands import command_values
from .qos import RELIABLE_10


def subscribe_operator(node, config, runner, now: Callable[[], float]) -> list:
    """Subscriptions to the operator topics of the kinds the embodiment has; none when takeover is off."""
    if config.takeover_release_s <= 0:
        return []
    cmap = runner.commands
    kinds = [("twist", TwistStamped, config.operator_twist_topic, bool(cmap.twist_index)),
             ("gripper", Float64, config.operator_gripper_topic, cmap.gripper_index is not None),
             ("joints", JointTrajectory, config.operator_joint_topic, bool(cmap.joint_index))]
    last_problem = {}

    def on_command(msg, kind: str) -> None:
        try:
            dims, values = command_values(msg, kind, cmap)
        except ValueError as exc:
            if last_problem.get(kind) != str(exc):  # one line per distinct problem, not per message
                node.get_logger().warning(f'dropping an operator {kind} command: {exc}')
            last_problem[kind] = str(exc)
            return
        runner.operator_command(dims, values, now())

    return [node.create_subscription(msg_type, topic, lambda msg, k=kind: on_command(msg, k), RELIABLE_10)
            for kind, msg_type, topic, present in kinds if present]
