"""Send an instruction as `ros2 topic pub --once` does, for tests and tools on machines without ros2cli.

`ros2 topic pub --once TOPIC std_msgs/msg/String "{data: ...}"` makes a new node with a new publisher
of the default QoS (reliable, **volatile**, depth 10), waits for a matching subscription, publishes
once and lingers 0.1 s. `publish_once` does the same from an existing node, and (unlike the CLI) can
wait for several subscriptions, so that a test knows every node could hear it.
"""
from __future__ import annotations

import time


def publish_once(node, executor, topic: str, text: str, min_subscriptions: int = 1, timeout_s: float = 30.0):
    """Publish `text` once on `topic` from a new volatile publisher, after `min_subscriptions` matched.
    `executor`: spun while waiting; None when another thread spins the node. Returns the publisher
    (destroy it when done; keeping it a while lets reliable delivery finish)."""
    from std_msgs.msg import String

    from ..nodes.qos import RELIABLE_10

    pub = node.create_publisher(String, topic, RELIABLE_10)
    deadline = time.monotonic() + timeout_s
    while pub.get_subscription_count() < min_subscriptions:
        if time.monotonic() > deadline:
            node.destroy_publisher(pub)
            raise TimeoutError(f"{pub.get_subscription_count()} of {min_subscriptions} subscriptions to {topic} "
                               f"matched after {timeout_s:g} s")
        if executor is None:
            time.sleep(0.02)
        else:
            executor.spin_once(timeout_sec=0.05)
    pub.publish(String(data=text))
    return pub
