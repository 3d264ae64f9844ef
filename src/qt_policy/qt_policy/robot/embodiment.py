"""The robot a policy is for: its action dimensions, the commands they become, its camera and state.

One YAML file (config/embodiments/*.yaml) parsed into one dataclass, `Embodiment`. The recorder, the
bag import, training (the model's action and state layout) and the policy node all read it, and a
checkpoint carries it (config.json "embodiment"), so a model only drives the robot it was trained
for: `compatibility_problems` lists what differs and the policy node refuses to configure on any.

Each action dimension becomes one robot command, ``command = offset + scale * value``:

  twist.linear.{x,y,z} / twist.angular.{x,y,z}  geometry_msgs/TwistStamped (m/s, rad/s), MoveIt Servo
  joint_position.<joint> / joint_velocity.<joint>  trajectory_msgs/JointTrajectory (one point,
      time_from_start = one control period; joint_trajectory_controller) or
      std_msgs/Float64MultiArray (forward_command_controller), per `joints.type`
  gripper                                       std_msgs/Float64 position command
  terminate                                     QAction.terminate when value >= 0.5 (the paper's
                                                 "episode done" dimension)

Velocity commands (twist, joint_velocity) and position commands (joint_position, gripper) differ
in how teleoperated commands between two control steps combine (robot/command_window.py) and in
what the safety limits mean (robot/safety.py). Nothing here imports ROS.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TWIST_AXES = tuple(f"twist.{part}.{axis}" for part in ("linear", "angular") for axis in "xyz")
JOINT_KINDS = ("joint_position", "joint_velocity")
JOINT_OUTPUTS = ("joint_trajectory", "float64_multi_array")
STATE_FIELDS = ("position", "velocity", "effort")


@dataclass
class ActionDimension:
    """One action dimension: the model decodes `value` in [low, high]; the robot gets offset + scale * value."""

    name: str
    command: str  # twist.linear.x .. twist.angular.z | joint_position.<joint> | joint_velocity.<joint> | gripper | terminate
    low: float = -1.0
    high: float = 1.0
    scale: float = 1.0  # command units per action unit (m/s, rad/s, rad, gripper units)
    offset: float = 0.0  # command at value 0 (position commands)
    # safety, in command units (0 = no limit): velocity commands: |command| <= max_velocity; position
    # commands: the target moves at most max_velocity per second. max_step: per-tick change of the command.
    max_velocity: float = 0.0
    max_step: float = 0.0

    @property
    def kind(self) -> str:
        """twist | joint_position | joint_velocity | gripper | terminate"""
        return self.command.split(".", 1)[0]

    @property
    def joint(self) -> str:
        return self.command.split(".", 1)[1] if self.kind in JOINT_KINDS else ""

    @property
    def is_velocity(self) -> bool:
        return self.kind in ("twist", "joint_velocity")

    def validate(self) -> None:
        if not self.name.strip():
            raise ValueError("an action dimension has no name")
        ok = self.command in TWIST_AXES or self.command in ("gripper", "terminate") or (
            self.kind in JOINT_KINDS and "." in self.command and self.joint.strip())
        if not ok:
            raise ValueError(f"action dimension {self.name!r}: unknown command {self.command!r}; use one of "
                             f"{', '.join(TWIST_AXES)}, joint_position.<joint>, joint_velocity.<joint>, gripper, terminate")
        if not self.low < self.high:
            raise ValueError(f"action dimension {self.name!r}: low {self.low} must be below high {self.high}")
        if self.scale == 0.0:
            raise ValueError(f"action dimension {self.name!r}: scale must not be 0 (the recorder inverts it)")
        if self.max_velocity < 0 or self.max_step < 0:
            raise ValueError(f"action dimension {self.name!r}: max_velocity and max_step must be >= 0 (0 = no limit)")


@dataclass
class TwistOutput:
    topic: str = "servo_node/delta_twist_cmds"  # geometry_msgs/TwistStamped (MoveIt Servo's input)
    frame_id: str = "base_link"


@dataclass
class JointOutput:
    type: str = "joint_trajectory"  # joint_trajectory (JointTrajectory) | float64_multi_array (Float64MultiArray)
    topic: str = "joint_trajectory_controller/joint_trajectory"


@dataclass
class GripperOutput:
    topic: str = "gripper/command"  # std_msgs/Float64


@dataclass
class CameraSpec:
    name: str = "scene"
    topic: str = "camera/image_raw"  # sensor_msgs/Image, or CompressedImage when compressed
    compressed: bool = False


@dataclass
class StateSpec:
    """The model's state vector: for each field, the named joints of a sensor_msgs/JointState, in order."""

    topic: str = "robot_state"  # '' = no state
    joints: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=lambda: ["position"])

    @property
    def names(self) -> list[str]:
        """One name per state entry (the bag's JointState names when there is one field)."""
        if self.fields == ["position"]:
            return list(self.joints)
        return [f"{j}.{f}" for f in self.fields for j in self.joints]

    @property
    def dim(self) -> int:
        return len(self.joints) * len(self.fields) if self.topic.strip() else 0

    def extract(self, names, **fields) -> list[float]:
        """The state vector from one JointState's names and arrays (position=..., velocity=..., effort=...).

        Joints are picked by name, so a joint_state_broadcaster's order does not matter; a message
        without names is taken in this spec's joint order. Raises ValueError naming what is missing.
        """
        names = [str(n) for n in names]
        out = []
        for f in self.fields:
            given = fields.get(f)
            values = [] if given is None else list(given)
            if not names:
                if len(values) != len(self.joints):
                    raise ValueError(f"JointState has no names and {len(values)} {f} values for {len(self.joints)} "
                                     f"joints {self.joints}")
                out.extend(float(v) for v in values)
                continue
            if len(values) != len(names):
                raise ValueError(f"JointState has {len(names)} names but {len(values)} {f} values")
            index = {n: i for i, n in enumerate(names)}
            missing = [j for j in self.joints if j not in index]
            if missing:
                raise ValueError(f"JointState lacks joints {missing} (has {names})")
            out.extend(float(values[index[j]]) for j in self.joints)
        return out


@dataclass
class WorkspaceSpec:
    """A box the end effector stays in: linear twist components pointing out of it are zeroed at its
    faces. Needs a geometry_msgs/PoseStamped of the end effector in the twist's frame; '' = no box."""

    pose_topic: str = ""
    min: list[float] = field(default_factory=lambda: [-1.0, -1.0, -1.0])
    max: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])


@dataclass
class Embodiment:
    name: str = "robot"
    control_rate_hz: float = 10.0  # control steps per second (the rate the data is recorded at)
    # a velocity command stays in force until the next one or this long (MoveIt Servo's incoming_command_timeout)
    command_timeout_s: float = 0.2
    actions: list[ActionDimension] = field(default_factory=list)
    twist: TwistOutput = field(default_factory=TwistOutput)
    joints: JointOutput = field(default_factory=JointOutput)
    gripper: GripperOutput = field(default_factory=GripperOutput)
    cameras: list[CameraSpec] = field(default_factory=lambda: [CameraSpec()])
    state: StateSpec = field(default_factory=StateSpec)
    workspace: WorkspaceSpec = field(default_factory=WorkspaceSpec)

    # ----- derived ---------------------------------------------------------------------------------
    @property
    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]

    @property
    def action_low(self) -> list[float]:
        return [float(a.low) for a in self.actions]

    @property
    def action_high(self) -> list[float]:
        return [float(a.high) for a in self.actions]

    def indices(self, kind: str) -> list[int]:
        return [i for i, a in enumerate(self.actions) if a.kind == kind]

    @property
    def joint_names(self) -> list[str]:
        return [a.joint for a in self.actions if a.kind in JOINT_KINDS]

    def validate(self) -> "Embodiment":
        if not self.actions:
            raise ValueError(f"embodiment {self.name!r} has no action dimensions")
        for a in self.actions:
            a.validate()
        for label, values in (("name", self.action_names), ("command", [a.command for a in self.actions])):
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"embodiment {self.name!r}: action dimension {label}s repeat: {dup}")
        if sum(a.kind == "gripper" for a in self.actions) > 1 or sum(a.kind == "terminate" for a in self.actions) > 1:
            raise ValueError(f"embodiment {self.name!r}: at most one gripper and one terminate dimension")
        if not self.control_rate_hz > 0 or not self.command_timeout_s > 0:
            raise ValueError(f"embodiment {self.name!r}: control_rate_hz and command_timeout_s must be > 0")
        if self.joints.type not in JOINT_OUTPUTS:
            raise ValueError(f"embodiment {self.name!r}: joints.type must be one of {JOINT_OUTPUTS}, got {self.joints.type!r}")
        kinds = {a.kind for a in self.actions if a.kind in JOINT_KINDS}
        if len(kinds) > 1:
            raise ValueError(f"embodiment {self.name!r}: joint dimensions mix joint_position and joint_velocity; a "
                             "controller takes one command interface")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names) or len({c.topic for c in self.cameras}) != len(self.cameras):
            raise ValueError(f"embodiment {self.name!r}: camera names and topics must differ, got "
                             f"{[(c.name, c.topic) for c in self.cameras]}")
        bad = [f for f in self.state.fields if f not in STATE_FIELDS]
        if bad:
            raise ValueError(f"embodiment {self.name!r}: state fields {bad} unknown; use {STATE_FIELDS}")
        if self.state.topic.strip() and not self.state.joints:
            raise ValueError(f"embodiment {self.name!r}: state.joints is empty; name the JointState joints to use "
                             "(or set state.topic '' for no state)")
        if len(self.workspace.min) != 3 or len(self.workspace.max) != 3 or any(
                lo >= hi for lo, hi in zip(self.workspace.min, self.workspace.max)):
            raise ValueError(f"embodiment {self.name!r}: workspace min/max need 3 values each with min < max")
        return self

    # ----- (de)serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Embodiment":
        return _build(cls, data or {}, "embodiment").validate()


def _build(cls, data: dict[str, Any], where: str):
    """A (nested) dataclass from a dict; unknown keys are an error naming where they are."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint)
            if not isinstance(value, list):
                raise ValueError(f"{where}.{key}: expected a list, got {value!r}")
            value = [_build(item, v, f"{where}.{key}[{i}]") if dataclasses.is_dataclass(item) else item(v)
                     for i, v in enumerate(value)]
        elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif hint in (int, str, bool) and not isinstance(value, hint):
            raise ValueError(f"{where}.{key}: expected {hint.__name__}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def load_embodiment(path) -> Embodiment:
    """An embodiment YAML file -> Embodiment (ValueError naming the file and the problem)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embodiment file {path} not found")
    try:
        return Embodiment.from_dict(yaml.safe_load(path.read_text()) or {})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def compatibility_problems(trained: Embodiment, robot: Embodiment) -> list[str]:
    """What keeps a model trained for `trained` from driving `robot` (empty = it may).

    The action layout (names, commands, limits, scale, offset), the state layout, the number of
    cameras and the control rate must agree; topics, frame ids, safety limits and the workspace box
    are the deployment's own.
    """
    problems = []
    if trained.action_names != robot.action_names:
        problems.append(f"action dimensions {trained.action_names} (model) vs {robot.action_names} (robot)")
    else:
        for a, b in zip(trained.actions, robot.actions):
            for attr in ("command", "low", "high", "scale", "offset"):
                if getattr(a, attr) != getattr(b, attr):
                    problems.append(f"dimension {a.name!r}: {attr} {getattr(a, attr)!r} (model) vs "
                                    f"{getattr(b, attr)!r} (robot)")
    if (trained.state.dim, trained.state.names) != (robot.state.dim, robot.state.names):
        problems.append(f"state {trained.state.names} (model) vs {robot.state.names} (robot)")
    if len(trained.cameras) != len(robot.cameras):
        problems.append(f"{len(trained.cameras)} camera(s) (model) vs {len(robot.cameras)} (robot)")
    if trained.control_rate_hz != robot.control_rate_hz:
        problems.append(f"control rate {trained.control_rate_hz:g} Hz (model) vs {robot.control_rate_hz:g} Hz (robot)")
    return problems


def model_layout_problems(embodiment: Embodiment, action_names, state_dim: int, cameras: int) -> list[str]:
    """For a checkpoint that carries no embodiment: does the model's own layout fit this one?"""
    problems = []
    if list(action_names) != embodiment.action_names:
        problems.append(f"the model's action dimensions {list(action_names)} vs the embodiment's "
                        f"{embodiment.action_names}")
    if int(state_dim) != embodiment.state.dim:
        problems.append(f"the model's state has {state_dim} values, the embodiment's {embodiment.state.dim}")
    if int(cameras) != len(embodiment.cameras):
        problems.append(f"the model takes {int(cameras)} camera(s), the embodiment has {len(embodiment.cameras)}")
    return problems
