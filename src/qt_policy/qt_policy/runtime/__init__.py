"""The nodes' logic without ROS: the policy runner (observations in, an action or a hold out), the
episode recorder (raw messages in, episode bags out), their configurations, the instruction gate.

Everything a node does lives here as plain Python, so it can be tested without a ROS graph; the nodes
in `qt_policy.nodes` only move messages in and out.
"""
