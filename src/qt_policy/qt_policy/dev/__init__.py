"""Development stand-ins: the launch-file runner for machines without launch_ros, and the closed-loop demo."""
