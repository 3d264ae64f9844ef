"""Export a checkpoint as an ONNX policy: one graph from observation to greedy action, for ONNX Runtime.

    qt-export --checkpoint models/qt_metaworld --out models/qt_metaworld_onnx
    qt-evaluate --checkpoint models/qt_metaworld_onnx --backend onnxruntime --episodes 50
    ros2 run qt_policy policy_node --ros-args -p checkpoint:=$PWD/models/qt_metaworld_onnx -p backend:=onnxruntime

OUT holds policy.onnx (context encoding and the cached greedy decoding of every dimension, unrolled),
config.json (the checkpoint's: model, embodiment, instructions), text_embeddings.npz (the training
instructions, encoded: a node that hears only those needs no sentence encoder) and export.json. Before
it returns, the export is checked: on --check random observations ONNX Runtime must choose the same
bins as torch (or, where two bins' Q are equal within 1e-5, either), and the same greedy Q within 1e-5.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="qt-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (one model, not an ensemble)")
    p.add_argument("--out", required=True, type=Path, help="export directory")
    p.add_argument("--check", type=int, default=200, help="random observations to compare torch and ONNX Runtime on "
                                                          "(0: no check) (default: 200)")
    args = p.parse_args(argv)
    from ..inference.equivalence import compare_backends
    from ..inference.onnx_export import export_policy

    try:
        out = export_policy(args.checkpoint, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"qt-export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    if args.check:
        report = compare_backends(args.checkpoint, out, random=args.check)
        print(f"check on {report['observations']} random observations: bins differ in {report['bins_differ']} "
              f"({report['ties']} of them ties: two bins within 1e-5 of Q), max |greedy Q difference| "
              f"{report['max_q_difference']:.2e}")
        if report["bins_differ"] > report["ties"] or report["max_q_difference"] > 1e-5:
            print("qt-export: the export does not act as the checkpoint does", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
