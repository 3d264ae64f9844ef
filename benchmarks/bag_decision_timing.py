#!/usr/bin/env python3
"""How the policy's decisions were timed in recorded episode bags (the ROS loop as it ran).

For every QAction: frame-to-action latency = its log time (when the recorder received it) minus its
header stamp (the stamp of the camera frame it was decided from), and the gap to the episode's
previous decision (header stamps). Percentiles over all bags, and per instruction with --per-task.
The twist a policy node sends goes out with its QAction, so the latency is also how late each
velocity command starts after its frame (results/teleop/README.md).

    python benchmarks/bag_decision_timing.py data/teleop_eval_ros/bags [--every 7] [--per-task]
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "qt_policy"))
from qt_policy.data import bag_format as bf  # noqa: E402
from qt_policy.data.bag_io import list_episode_bags  # noqa: E402


def bag_timing(bag: Path, typestore) -> tuple[str, list[float], list[float]]:
    """(instruction, latencies ms, gaps between decisions ms) of one episode bag."""
    from rosbags.highlevel import AnyReader

    instruction, latency, stamps = "", [], []
    with AnyReader([bag], default_typestore=typestore) as reader:
        conns = [c for c in reader.connections if c.topic in (bf.ACTION_TOPIC, bf.INSTRUCTION_TOPIC)]
        for conn, log_ns, raw in reader.messages(connections=conns):
            if conn.topic == bf.INSTRUCTION_TOPIC:
                instruction = instruction or typestore.deserialize_cdr(raw, conn.msgtype).data
                continue
            stamp = bf.cdr_header_stamp_ns(raw)
            latency.append((log_ns - stamp) / 1e6)
            stamps.append(stamp)
    return instruction, latency, list(np.diff(stamps) / 1e6)


def summary(label: str, latency, gaps) -> str:
    lat, gap = np.asarray(latency), np.asarray(gaps)
    p = np.percentile(lat, [10, 50, 90, 99])
    return (f"{label:<22} {lat.size:6d} steps  latency ms p10 {p[0]:5.1f}  p50 {p[1]:5.1f}  p90 {p[2]:5.1f}  "
            f"p99 {p[3]:5.1f}   decision gap ms min {gap.min():6.1f}  max {gap.max():6.1f}  over 150: {(gap > 150).sum()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", type=Path, help="folder of episode bags (e.g. a --through-ros run's bags)")
    p.add_argument("--every", type=int, default=1, help="read every n-th bag (default: all)")
    p.add_argument("--per-task", action="store_true", help="one line per instruction too")
    args = p.parse_args(argv)
    ts = bf.get_episode_typestore()
    bags = list_episode_bags(args.bags)[::args.every]
    if not bags:
        print(f"no episode bags in {args.bags}", file=sys.stderr)
        return 1
    per = defaultdict(lambda: ([], []))
    for bag in bags:
        instruction, latency, gaps = bag_timing(bag, ts)
        per[instruction][0].extend(latency)
        per[instruction][1].extend(gaps)
    print(f"{len(bags)} bags from {args.bags}")
    print(summary("all", [x for v in per.values() for x in v[0]], [x for v in per.values() for x in v[1]]))
    if args.per_task:
        for instruction, (latency, gaps) in sorted(per.items()):
            print(summary(instruction, latency, gaps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
