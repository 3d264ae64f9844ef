"""A second camera driver that floods a topic with huge frames: how the policy node copes with them.

Run as its own process (a frame of 4000x4000 rgb8 is 48 MB: publishing it from the process that
measures would stall that process's own timers):

    python -m qt_policy.dev.flood_camera /camera/image_raw --size 4000 --hz 1

Used by test_policy_node.py and benchmarks/bench_policy_node.py --flood.
"""
from __future__ import annotations

import argparse
import array
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qt_policy.dev.flood_camera", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topic", help="sensor_msgs/Image topic to publish on (sensor-data QoS)")
    parser.add_argument("--size", type=int, default=4000, help="width and height of each rgb8 frame")
    parser.add_argument("--hz", type=float, default=1.0, help="frames a second")
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("flood_camera")
    pub = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    n = args.size
    data = array.array("B", np.random.default_rng(0).integers(0, 256, n * n * 3, dtype=np.uint8).tobytes())
    msg = Image(height=n, width=n, encoding="rgb8", step=n * 3, data=data)
    try:
        while rclpy.ok():  # SIGINT and SIGTERM shut the context down (rclpy's signal handlers)
            msg.header.stamp = node.get_clock().now().to_msg()
            try:
                pub.publish(msg)
            except Exception:  # noqa: BLE001 - a publish racing the shutdown: stop quietly, else report
                if rclpy.ok():
                    raise
            time.sleep(1.0 / args.hz)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
