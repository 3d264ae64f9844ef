"""Export episode bags (recorded, teleoperated, generated) as a LeRobotDataset v3.0 folder.

    qt-lerobot-export BAG_DIR OUT_DIR [--fps 10] [--gamma 0.98] [--robot-type NAME]

Incremental: bags already in OUT_DIR are skipped, new ones are appended. The dataset carries the
success labels (next.success, next.reward, next.done) and the Monte-Carlo return-to-go per frame
(return_to_go), so offline RL can use it as it is. Check it with an independent reader:
`lerobot-doctor check OUT_DIR`. The other way: `qt-train --data OUT_DIR ...`
trains on a LeRobotDataset v3.0 folder directly.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.config_flags import existing_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-lerobot-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag_dir", metavar="BAG_DIR", type=existing_folder, help="folder holding one rosbag2 folder per episode")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="the LeRobotDataset folder (created or appended to)")
    p.add_argument("--fps", type=int, default=10, help="frames per second of the data (the control rate; default 10)")
    p.add_argument("--gamma", type=float, default=0.98,
                   help="discount of the return_to_go column (default 0.98, the training default)")
    p.add_argument("--robot-type", default="qt_ros", help="info.json robot_type (default qt_ros)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.lerobot import LeRobotFormatError, export_bags

    try:
        s = export_bags(args.bag_dir, args.out_dir, fps=args.fps, gamma=args.gamma, robot_type=args.robot_type,
                        progress=not args.no_progress)
    except LeRobotFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out_dir}: exported {s['exported']} new episode(s); {s['total_episodes']} episodes, "
          f"{s['total_frames']} frames in all")
    for bag, reason in s["skipped"]:
        print(f"  skipped {bag}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
