"""Train Q-Transformer (or the behaviour-cloning baseline) from recorded or generated episodes.

    qt-train --data data/bags --out runs/qt                      # the recommended recipe (the defaults)
    qt-train --data data/bags --out runs/bc --algo bc --success-only
    qt-train --data data/bags --out runs/paper --preset paper     # the paper's loss and replay
    qt-convert data/bags data/bags/_shards --workers 8                  # then, data-parallel (gloo on CPU,
    torchrun --nproc-per-node 2 -m qt_policy.tools.train --data data/bags --out runs/ddp  # NCCL on GPUs)

--data is a folder of episode bags (converted into tar shards, BAGS/_shards, on first use), a LeRobot
v3.0 dataset, or a shard folder. Several machines: the same torchrun command on each with
`--nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id RUN` (README).
Every config field is a flag (below); a --preset sets several, and explicit flags win over it.
Act with OUT/checkpoint/ (the averaged weights unless --act-with online); OUT/checkpoint_online/
holds the online weights and the training state (--resume continues from it), OUT/step_N/ the
weights to act with every --checkpoint-every steps, OUT/metrics.jsonl and OUT/tb/ the curves.
"""
from __future__ import annotations

import sys

from ..training.options import build_parser as _build_parser
from ..training.options import config_overrides


def build_parser():
    """qt-train's flags, with this module's text as the description."""
    return _build_parser(__doc__)


def main(argv=None) -> int:
    from ..training import fit

    args = build_parser().parse_args(argv)
    overrides = config_overrides(args)
    try:
        result = fit(args.data, args.out, preset_name=args.preset, success_only=args.success_only, tasks=args.tasks,
                     embodiment=args.embodiment, resume=args.resume, device=args.device,
                     threads=args.threads, progress=not args.no_progress, **overrides)
    except ValueError as exc:  # data, embodiment or run folder that do not fit: say so, no traceback
        print(f"qt-train: error: {exc}", file=sys.stderr)
        return 2
    return 0 if result.in_sync else 1


if __name__ == "__main__":
    sys.exit(main())
