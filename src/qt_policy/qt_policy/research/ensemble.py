"""Bundle trained checkpoints into one ensemble checkpoint that acts on their mean Q.

    qt-ensemble --out models/qt_ensemble runs/a/checkpoint runs/b/checkpoint runs/c/checkpoint

The folder holds member_<k>/ (weights + config of each run) and a config.json listing them; the
evaluation CLI and the policy node's `checkpoint` parameter take it like any checkpoint. Members
must share the action bins and the inputs (camera size, frames, state, text). Decoding costs one
forward pass per member. `evaluate --checkpoint A B C` tries an ensemble without bundling it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from ..core.checkpoint import save_ensemble

    p = argparse.ArgumentParser(prog="qt-ensemble", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", nargs="+", type=Path, help="checkpoint directories of the runs (two or more)")
    p.add_argument("--out", type=Path, required=True, help="ensemble checkpoint directory to write")
    args = p.parse_args(argv)
    try:
        out = save_ensemble(args.out, args.members, {"members_from": [str(m) for m in args.members]})
    except (ValueError, FileNotFoundError) as err:
        print(f"qt-ensemble: {err}", file=sys.stderr)
        return 2
    print(f"ensemble of {len(args.members)} checkpoints written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
