"""ROS messages of robot commands (robot/commands.py groups the values), shared by the nodes that send them."""
from geometry_msgs.msg import TwistStamped


def twist_stamped(stamp, frame_id: str, linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> TwistStamped:
    """geometry_msgs/TwistStamped (MoveIt Servo's input) from linear (m/s) and angular (rad/s) xyz."""
    msg = TwistStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in angular)
    return msg
