"""qt_policy: Q-Transformer offline RL policy for robot arms, with ROS 2 nodes."""
