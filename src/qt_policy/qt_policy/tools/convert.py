"""Convert recorded episodes into the training shards (incremental, parallel).

    qt-convert SOURCE OUT_DIR [--image-size N] [--workers W]

SOURCE: a folder of episode bags (only completed bags are read; ``<name>.partial`` folders are reported,
never converted), a LeRobotDataset v3.0 folder, or a training cache of an earlier qt_policy. Episodes
already in OUT_DIR's manifest are not read again. Under torchrun, run this first, in one process.
Prints a summary of the whole shard folder.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.config_flags import existing_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qt-convert",
        description="Convert episode bags (rosbag2/MCAP folders), a LeRobot v3.0 dataset or an earlier training "
                    "cache into WebDataset tar shards for training. Incremental: episodes already in "
                    "OUT_DIR/manifest.json are skipped.")
    p.add_argument("source", metavar="SOURCE", type=existing_folder,
                   help="folder holding one rosbag2 folder per episode, a LeRobot dataset, or an old cache (index.json)")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path,
                   help="shard folder (manifest.json, successes/*.tar, failures/*.tar); training on SOURCE uses "
                        "SOURCE/_shards (SOURCE/_shards_N with --image-size N)")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="centre-crop and resize images to N x N (data/observation.py, as the policy node does); "
                        "default: keep the recorded size (must be square)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="converter processes, each writing its own shards (default: the cores, %(default)s)")
    p.add_argument("--shard-mb", type=float, default=None,
                   help="close a shard when it reaches this size (default: 256 MB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.bag_io import find_partial_bags
    from ..data.convert import convert_bags
    from ..data.shard_format import SHARD_MB, summarize_manifest

    partial = find_partial_bags(args.source)
    manifest = convert_bags(args.source, args.out_dir, image_size=args.image_size, workers=args.workers,
                            progress=not args.no_progress, shard_mb=args.shard_mb or SHARD_MB)
    s = summarize_manifest(manifest)
    print(f"shards: {args.out_dir}  (converted now: {manifest.get('converted', 0)} episodes)")
    print(f"episodes: {s['episodes']}  steps: {s['steps']}  success fraction: {s['success_fraction']:.3f}"
          f"  image size: {manifest.get('image_size') or 'as recorded'}  shards: {s['shards']}"
          f"  size: {s['bytes'] / 1e6:.1f} MB")
    if s["skipped"]:
        print(f"skipped (unreadable/incomplete) episodes: {s['skipped']}")
        for sk in manifest["skipped"][-5:]:
            print(f"  {sk.get('source', sk['id'])}: {sk['reason']}")
    if partial:
        print(f"unfinished .partial bags ignored: {len(partial)} (the recorder salvages them at its next start; "
              f"or: qt-salvage {args.source})")
        for p in partial[:5]:
            print(f"  {p}")
    print(f"instructions ({len(s['instructions'])}):")
    for text, n in s["instructions"].items():
        print(f"  {n:6d}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
