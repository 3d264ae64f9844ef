"""ROS messages of robot commands (robot/commands.py groups the values), shared by the nodes that send them."""
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def twist_stamped(stamp, frame_id: str, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> TwistStamped:
    """geometry_msgs/TwistStamped (MoveIt Servo's input) from linear (m/s) and angular (rad/s) xyz."""
    msg = TwistStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in angular)
    return msg


def joint_command(stamp, names, values, message_type: str, velocity: bool, period_s: float):
    """Joint commands as the embodiment names their message: std_msgs/Float64MultiArray (ros2_control's
    forward controllers; `message_type` 'float64_multi_array') or a one-point trajectory_msgs/JointTrajectory
    reached in one control period (velocities or positions)."""
    values = [float(v) for v in values]
    if message_type == "float64_multi_array":
        return Float64MultiArray(data=values)
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    if velocity:
        point.velocities = values
    else:
        point.positions = values
    sec, nsec = divmod(int(round(period_s * 1e9)), 1_000_000_000)
    point.time_from_start.sec, point.time_from_start.nanosec = sec, nsec
    msg.points = [point]
    return msg


class CommandPublishers:
    """The robot's command topics of an embodiment (twist, joints, gripper: those its command map uses)
    and how a RobotCommand (robot/commands.py) or a stop goes out on them. `create(type, topic, depth)`
    makes a publisher (a lifecycle node's create_lifecycle_publisher)."""

    def __init__(self, create, embodiment, cmap, period_s: float):
        self.embodiment, self.cmap, self.period_s = embodiment, cmap, period_s
        self.pubs: dict = {}
        if cmap.twist_index:
            self.pubs["twist"] = create(TwistStamped, embodiment.twist.topic, 10)
        if cmap.joint_index:
            kind = JointTrajectory if embodiment.joints.type == "joint_trajectory" else Float64MultiArray
            self.pubs["joints"] = create(kind, embodiment.joints.topic, 10)
        if cmap.gripper_index is not None:
            self.pubs["gripper"] = create(Float64, embodiment.gripper.topic, 10)

    def _twist(self, stamp, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> TwistStamped:
        return twist_stamped(stamp, self.embodiment.twist.frame_id, linear, angular)

    def _joints(self, stamp, names, values):
        return joint_command(stamp, names, values, self.embodiment.joints.type,
                             self.cmap.joint_kind == "joint_velocity", self.period_s)

    def publish(self, command, stamp) -> None:
        if "twist" in self.pubs:
            self.pubs["twist"].publish(self._twist(stamp, command.linear, command.angular))
        if "joints" in self.pubs and command.joints is not None:
            self.pubs["joints"].publish(self._joints(stamp, command.joint_names, command.joints))
        if "gripper" in self.pubs and command.gripper is not None:
            self.pubs["gripper"].publish(Float64(data=float(command.gripper)))

    def stop(self, stamp) -> None:
        """Zero velocity: a zero twist and zero joint velocities (position targets are left as they are:
        the controller holds the last one)."""
        if "twist" in self.pubs:
            self.pubs["twist"].publish(self._twist(stamp))
        if "joints" in self.pubs and self.cmap.joint_kind == "joint_velocity":
            names = self.cmap.joint_names
            self.pubs["joints"].publish(self._joints(stamp, names, [0.0] * len(names)))
