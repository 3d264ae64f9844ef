"""ROS-free runtime of the policy node: image conversion, node configuration, the control loop logic.

Everything the node does lives here as plain Python, so it can be tested without a ROS graph; the
node in `qt_policy.nodes.policy_node` only moves messages in and out.
"""
