"""Convert a folder of episode bags into the training cache (incremental).

    qt-convert BAG_DIR CACHE_DIR [--image-size N]

Only completed bags are read (``<name>.partial`` folders are reported, never converted); bags already
in the cache's index are not read again. Prints a summary of the whole cache.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.config_flags import existing_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qt-convert",
        description="Convert episode bags (rosbag2/MCAP folders) into the memory-mapped training cache. "
                    "Incremental: bags already in CACHE_DIR/index.json are skipped.")
    p.add_argument("bag_dir", metavar="BAG_DIR", type=existing_folder, help="folder holding one rosbag2 folder per episode")
    p.add_argument("cache_dir", metavar="CACHE_DIR", type=Path, help="output cache folder (index.json + episodes/)")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="centre-crop and resize images to N x N (data/observation.py, as the policy node does); "
                        "default: keep the recorded size")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.bag_io import find_partial_bags
    from ..data.cache import convert_bags, summarize_index

    partial = find_partial_bags(args.bag_dir)
    index = convert_bags(args.bag_dir, args.cache_dir, image_size=args.image_size, progress=not args.no_progress)
    s = summarize_index(index)
    print(f"cache: {args.cache_dir}  (converted now: {index.get('converted', 0)})")
    print(f"episodes: {s['episodes']}  steps: {s['steps']}  success fraction: {s['success_fraction']:.3f}"
          f"  image size: {index.get('image_size') or 'as recorded'}")
    if s["skipped"]:
        print(f"skipped (unreadable/incomplete) bags: {s['skipped']}")
        for sk in index["skipped"][-5:]:
            print(f"  {sk['source']}: {sk['reason']}")
    if partial:
        print(f"unfinished .partial bags ignored: {len(partial)} (the recorder salvages them at its next start; "
              f"or: qt-salvage {args.bag_dir})")
        for p in partial[:5]:
            print(f"  {p}")
    print(f"instructions ({len(s['instructions'])}):")
    for text, n in s["instructions"].items():
        print(f"  {n:6d}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
