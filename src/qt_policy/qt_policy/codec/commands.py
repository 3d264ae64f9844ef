"""A teleoperator's command message (TwistStamped, JointTrajectory / Float64MultiArray joints, gripper
Float64) as the action dimensions it sets, by the robot's command map (robot/commands.py)."""
from __future__ import annotations

import math

COMMAND_KINDS = ("twist", "joints", "gripper")


def command_values(msg, kind: str, cmap) -> tuple[list[int], list[float]]:
    """(action dimensions, values) a command of `kind` sets; ValueError for one that sets nothing
    usable (no trajectory point, a non-finite value, an unknown kind). Joint commands are a
    JointTrajectory (its first point) or a Float64MultiArray (the embodiment's joint order)."""
    if kind == "twist":
        t = msg.twist
        dims, values = cmap.from_twist((t.linear.x, t.linear.y, t.linear.z), (t.angular.x, t.angular.y, t.angular.z))
    elif kind == "joints" and hasattr(msg, "points"):
        if not msg.points:
            raise ValueError("JointTrajectory without points")
        point = msg.points[0]
        field = point.velocities if cmap.joint_kind == "joint_velocity" else point.positions
        dims, values = cmap.from_joints(msg.joint_names, field)
    elif kind == "joints":
        dims, values = cmap.from_joints([], msg.data)
    elif kind == "gripper":
        dims, values = cmap.from_gripper(msg.data)
    else:
        raise ValueError(f"unknown command kind {kind!r} (known: {', '.join(COMMAND_KINDS)})")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite command {list(values)}")
    return dims, values


def decode_command(raw: bytes, kind: str, msgtype: str, cmap, typestore) -> tuple[list[int], list[float]]:
    """`command_values` of a raw CDR command of type `msgtype` (what the recorder subscribes to)."""
    return command_values(typestore.deserialize_cdr(raw, msgtype), kind, cmap)
