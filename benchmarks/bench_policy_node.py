#!/usr/bin/env python3
"""Image-to-action latency and action rate of the policy node, run as its own ROS 2 process.

A camera publisher in this process sends sensor_msgs/Image at --camera-hz (default 30 Hz) with
header.stamp = now; the policy node (separate process, at --control-rate, default 10: the embodiment's
control_rate_hz, config/embodiments/metaworld_sawyer.yaml with that rate)
answers with qt_msgs/QAction whose header.stamp is the stamp of the frame it decided from.
Latency = time this process receives the QAction - time it published the image with that stamp:
the node decides when the frame of a control step arrives (frames between two steps make no
decision and are not counted), so it is conversion, preprocessing (crop + resize), the model's
decode and both transports. Run it from `source scripts/env.sh` (the Fast DDS profile that lets
frames over 512 KiB through). Also reported: the achieved action rate and the policy's own
decode latency (its /diagnostics). Default model: the default ModelConfig with random weights
(the same architecture and cost as a trained one); --checkpoint to use a real one.

    source scripts/env.sh && python benchmarks/bench_policy_node.py [--seconds 20] [--camera 64x64 640x480] [--flood]
"""
from __future__ import annotations

import argparse
import array
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src" / "qt_policy"))


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def make_default_checkpoint(directory: Path, num_bins: int | None = None) -> Path:
    import torch

    from qt_policy.core.checkpoint import save_checkpoint
    from qt_policy.core.config import ModelConfig
    from qt_policy.core.model import QTransformer, count_parameters

    torch.manual_seed(0)
    model = QTransformer(ModelConfig() if num_bins is None else ModelConfig(num_bins=num_bins))
    print(f"[bench] default ModelConfig ({model.cfg.num_bins} bins), random weights: {count_parameters(model):,} parameters", flush=True)
    return save_checkpoint(directory, model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="model directory (default: random default model)")
    parser.add_argument("--num-bins", type=int, default=None, help="bins of the random default model (default: ModelConfig's)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time per camera size")
    parser.add_argument("--camera", nargs="+", default=["64x64", "640x480"], help="camera sizes WxH, one run each")
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--control-rate", type=float, default=10.0,
                        help="the embodiment's control_rate_hz (a copy of the sim arm's file with this rate)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of each run not measured")
    parser.add_argument("--flood", action="store_true",
                        help="run each camera size again while another process publishes a 4000x4000 rgb8 frame a "
                             "second on the same topic (qt_policy.dev.flood_camera): the rate and latency of the "
                             "other frames' decisions")
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the policy process (torch intra-op threads; default: inherited)")
    args = parser.parse_args()

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    from qt_policy.graph.processes import stop_processes
    from qt_policy.nodes.qos import LATCHED
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from qt_msgs.msg import QAction

    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM")
    tmp = tempfile.TemporaryDirectory(prefix="bench_policy_node_")
    checkpoint = Path(args.checkpoint) if args.checkpoint else make_default_checkpoint(Path(tmp.name) / "model", args.num_bins)
    log_path = Path(tmp.name) / "policy.log"
    rclpy.init()
    node = rclpy.create_node("bench_policy_node")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    proc = flooder = None
    rows = []
    try:
        published: dict[int, float] = {}  # image stamp (ns) -> publish time (perf_counter)
        received: list[tuple[int, float]] = []  # (action stamp ns, receive time)
        decode_ms: list[str] = []
        image_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        instruction_pub = node.create_publisher(String, "/instruction", LATCHED)
        node.create_subscription(QAction, "/qt/action", lambda m: received.append(
            (m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec, time.perf_counter())),
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))

        def on_diag(msg):
            for status in msg.status:
                for kv in status.values:
                    if kv.key == "decode_latency_p50_ms":
                        decode_ms.append(kv.value)
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)

        # a second policy node in this domain would answer too: refuse
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            executor.spin_once(timeout_sec=0.1)
        if any(name == "qt_policy" for name, _ in node.get_node_names_and_namespaces()):
            print(f"[bench] ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')} already has a qt_policy node: "
                  "set another ROS_DOMAIN_ID", file=sys.stderr)
            return 2

        import yaml

        embodiment = yaml.safe_load((REPO / "config" / "embodiments" / "metaworld_sawyer.yaml").read_text())
        embodiment["control_rate_hz"] = float(args.control_rate)
        embodiment_file = log_path.with_name("bench_embodiment.yaml")
        embodiment_file.write_text(yaml.safe_dump(embodiment))
        cmd = [sys.executable, "-m", "qt_policy.nodes.policy_node", "--ros-args",
               "-p", f"checkpoint:={checkpoint}", "-p", f"embodiment:={embodiment_file}"]
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        print(f"[bench] policy node pid {proc.pid}; waiting for it to configure...", flush=True)
        t0 = time.monotonic()
        while node.count_publishers("/qt/action") == 0:
            if proc.poll() is not None or time.monotonic() - t0 > 180:
                print(f"[bench] policy node did not come up:\n{log_path.read_text()[-3000:]}", file=sys.stderr)
                return 1
            executor.spin_once(timeout_sec=0.1)
        print(f"[bench] policy node up after {time.monotonic() - t0:.1f} s", flush=True)
        instruction_pub.publish(String(data="open the drawer"))

        for size, flood in [(size, flood) for size in args.camera for flood in ([False, True] if args.flood else [False])]:
            width, height = (int(v) for v in size.lower().split("x"))
            flooder = None
            if flood:
                flooder = subprocess.Popen([sys.executable, "-m", "qt_policy.dev.flood_camera", "/camera/image_raw"],
                                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t_up = time.monotonic()
                while node.count_publishers("/camera/image_raw") < 2:
                    if flooder.poll() is not None or time.monotonic() - t_up > 60:
                        print("[bench] the flood publisher did not come up", file=sys.stderr)
                        return 1
                    executor.spin_once(timeout_sec=0.1)
            rng = np.random.default_rng(0)
            data = array.array("B", rng.integers(0, 256, height * width * 3, dtype=np.uint8).tobytes())
            img = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3, data=data)
            img.header.frame_id = "camera"

            def publish():
                img.header.stamp = node.get_clock().now().to_msg()
                published[img.header.stamp.sec * 1_000_000_000 + img.header.stamp.nanosec] = time.perf_counter()
                image_pub.publish(img)

            log_from = log_path.stat().st_size
            timer = node.create_timer(1.0 / args.camera_hz, publish)
            published.clear()
            received.clear()
            decode_ms.clear()
            start = time.perf_counter()
            measure_from = start + args.warmup
            stop = measure_from + args.seconds
            while time.perf_counter() < stop:
                executor.spin_once(timeout_sec=0.01)
            node.destroy_timer(timer)
            if flooder is not None:
                stop_processes([flooder], timeout=10)
                flooder = None
            t_drain = time.perf_counter() + 0.5  # actions for the last frames
            while time.perf_counter() < t_drain:
                executor.spin_once(timeout_sec=0.01)
            holds = log_path.read_bytes()[log_from:].count(b"holding: camera stale")  # warm-up included
            frames = sum(1 for t in published.values() if measure_from <= t < stop)
            measured = [(s, t) for s, t in received if measure_from <= t < stop]
            lat = [(t - published[s]) * 1e3 for s, t in measured if s in published]
            times = sorted(t for _, t in measured)
            rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0
            rows.append({"camera": f"{width}x{height}" + (" + flood" if flood else ""), "frames": frames, "camera_hz": frames / args.seconds,
                         "actions": len(measured), "matched": len(lat), "rate": rate,
                         "p50": percentile(lat, 50), "p90": percentile(lat, 90), "p99": percentile(lat, 99),
                         "max": max(lat) if lat else float("nan"), "decode": decode_ms[-1] if decode_ms else "n/a",
                         "holds": holds})
            print(f"[bench] {size}: {len(lat)} actions matched", flush=True)
            # let the policy see a stale camera between runs, then start the next size fresh
            t_gap = time.perf_counter() + 1.0
            while time.perf_counter() < t_gap:
                executor.spin_once(timeout_sec=0.05)
    finally:
        if flooder is not None:
            stop_processes([flooder], timeout=10)
        if proc is not None:
            stop_processes([proc], timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()

    load = os.getloadavg()
    print(f"\npolicy node (separate process) at control_rate {args.control_rate:g} Hz, camera {args.camera_hz:g} Hz, "
          f"model {'random default ModelConfig' if not args.checkpoint else checkpoint}, torch threads "
          f"{args.threads or os.environ.get('OMP_NUM_THREADS', 'default')}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load avg {load[0]:.1f}/{load[1]:.1f}")
    print("image-to-action latency = QAction receive time - publish time of the image it names (the decision is made "
          "when the frame of a control step arrives); stale holds: times the node held for a stale camera during the "
          "run, warm-up included\n")
    if args.flood:
        print("'+ flood': a 4000x4000 rgb8 frame a second from another process on the same topic (not counted)")
    head = f"{'camera':>17} {'cam Hz':>7} {'actions':>8} {'act Hz':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} " \
           f"{'max ms':>8} {'decode p50 ms':>14} {'stale holds':>12}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['camera']:>17} {r['camera_hz']:>7.1f} {r['matched']:>8} {r['rate']:>7.2f} {r['p50']:>8.1f} "
              f"{r['p90']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {r['decode']:>14} {r['holds']:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
