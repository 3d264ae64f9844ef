#!/usr/bin/env python3
"""Where a flood of huge frames delays the small ones: a bare rclpy subscriber, no policy.

A 30 Hz stream of 64x64 rgb8 frames (a thread of this process) and, in the second run, a 4000x4000
rgb8 frame a second from another process (qt_policy.dev.flood_camera) share one topic; a third
process subscribes (sensor-data QoS, one single-threaded executor, as the policy node) and notes
for every small frame its header stamp (sent), rmw's received timestamp and when its callback ran.
Gaps between consecutive small frames show which stage stalls: the sender, DDS, or the executor
taking the huge messages into Python.

    source scripts/env.sh && python benchmarks/bench_flood_receive.py [--seconds 30]
"""
from __future__ import annotations

import argparse
import array
import os
import platform
import subprocess
import sys
import threading
import time

RECEIVER = r'''
import json, sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("flood_receiver")
rows = []
node.create_subscription(Image, sys.argv[1], lambda m, info: rows.append(
    (m.width, m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, info["received_timestamp"] * 1e-9, time.time())),
    qos_profile_sensor_data)
t_end = time.time() + float(sys.argv[2])
while time.time() < t_end:
    rclpy.spin_once(node, timeout_sec=0.05)
print(json.dumps(rows))
'''


def run(seconds: float, flood: bool, topic: str) -> list:
    import json

    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = rclpy.create_node("flood_small_camera")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, topic, str(seconds)], stdout=subprocess.PIPE)
    flooder = subprocess.Popen([sys.executable, "-m", "qt_policy.dev.flood_camera", topic],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if flood else None
    done = threading.Event()

    def send():
        msg = Image(height=64, width=64, encoding="rgb8", step=192, data=array.array("B", bytes(64 * 64 * 3)))
        while not done.is_set():
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            time.sleep(1 / 30)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    out, _ = receiver.communicate(timeout=seconds + 120)
    done.set()
    sender.join()
    if flooder is not None:
        flooder.terminate()
        flooder.wait(10)
    node.destroy_node()
    return json.loads(out)


def main() -> int:
    import numpy as np
    import rclpy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    args = parser.parse_args()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM")
    rclpy.init()
    results = {}
    try:
        for flood in (False, True):
            results[flood] = run(args.seconds, flood, f"/bench_flood_{os.getpid()}_{int(flood)}")
    finally:
        rclpy.try_shutdown()
    load = os.getloadavg()
    print(f"\n64x64 frames at 30 Hz, {args.seconds:g} s a run; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load avg {load[0]:.1f}; gap = time between consecutive small frames at that stage")
    head = f"{'run':>8} {'small':>6} {'huge':>5} {'stage':>13} {'max gap ms':>11} {'gaps>0.2 s':>11} {'p99 delay ms':>13}"
    print(head + "\n" + "-" * len(head))
    for flood, rows in results.items():
        small = np.array([r[1:] for r in rows if r[0] == 64])
        huge = sum(r[0] != 64 for r in rows)
        for k, stage in enumerate(("sent", "rmw received", "callback")):
            gaps = np.diff(small[:, k])
            delay = (small[:, k] - small[:, max(k - 1, 0)]) * 1e3
            print(f"{'flood' if flood else 'plain':>8} {len(small):>6} {huge:>5} {stage:>13} {gaps.max() * 1e3:>11.1f} "
                  f"{int((gaps > 0.2).sum()):>11} {np.percentile(delay, 99) if k else 0.0:>13.1f}")
    print("p99 delay: from the stage before (sent -> rmw received -> callback)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
