"""The robot side, without ROS: embodiment files, action <-> command mapping, safety, control steps."""
