"""Simulated arm for data collection and evaluation: Meta-World v3 tasks as a camera robot (no ROS)."""
