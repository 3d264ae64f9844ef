"""Make ordinary episode bags of the unfinished ones in a folder (what a crash, kill or full disk left).

    qt-salvage BAG_DIR [--dry-run]

The recorder does this itself at start-up; this is for folders copied off a robot, or a recorder that
is not running. Prints one line per folder: what it held and what became of it.
"""
from __future__ import annotations

import argparse
import sys

from ..core.config_flags import existing_folder


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qt-salvage",
        description="Recover every complete MCAP chunk of the unfinished episode bags (<name>.partial) in "
                    "BAG_DIR into ordinary bags (end_reason from the recorder's note, else 'interrupted'; "
                    "success only if it was recorded and nothing was lost). Folders with no action are removed.")
    p.add_argument("bag_dir", metavar="BAG_DIR", type=existing_folder, help="folder holding one rosbag2 folder per episode")
    p.add_argument("--dry-run", action="store_true", help="only count what each unfinished folder holds")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data import bag_format as bf
    from ..data.bag_salvage import PartialBagScan, find_unfinished, salvage_partial

    names = find_unfinished(args.bag_dir)
    print(f"{len(names)} unfinished episode folder(s) in {args.bag_dir}")
    failed = 0
    for name in names:
        if args.dry_run:
            folder = next(p for p in args.bag_dir.glob(f"{name}.*") if p.is_dir())
            counts = PartialBagScan(folder).count()
            print(f"  {name}: {counts.get(bf.ACTION_TOPIC, 0)} steps readable ({counts})")
            continue
        try:
            got = salvage_partial(args.bag_dir, name)
        except OSError as exc:
            failed += 1
            print(f"  {name}: not salvaged ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        where = got.bag_path or "removed"
        print(f"  {name}: {got.num_steps} steps, success={got.success}, end_reason={got.end_reason} -> {where}"
              f" ({got.detail})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
