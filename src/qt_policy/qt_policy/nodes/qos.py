"""The QoS profiles every node of the graph uses, defined once so that publishers and subscribers match."""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Latched like a parameter: a late-starting node still gets the current instruction (or hold state). A
# transient-local subscription does not match a volatile publisher (`ros2 topic pub`'s default), so the
# instruction and enable inputs also subscribe RELIABLE_10 (nodes/instruction_input.py).
LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# actions, commands, results, success: every message counts; as a subscription it matches reliable
# publishers of either durability (`ros2 topic pub`'s default QoS is this profile)
RELIABLE_10 = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# camera/state publishers: reliable publishers match reliable and best-effort (SensorDataQoS) subscribers alike
SENSOR_PUBLISHER = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
