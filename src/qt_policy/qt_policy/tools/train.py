"""Train Q-Transformer (or the behaviour-cloning baseline) from recorded or generated episodes.

    qt-train --data data/bags --out runs/qt                      # the recommended recipe (the defaults)
    qt-train --data data/bags --out runs/bc --algo bc --success-only
    qt-train --data data/bags --out runs/paper --preset paper     # the paper's loss and replay
    torchrun --nproc-per-node 2 -m qt_policy.tools.train --data ... --out ...   # data-parallel (gloo on CPU)

--data is a folder of episode bags (converted into the training cache on first use) or a cache.
Every config field is a flag (below); a --preset sets several, and explicit flags win over it.
Act with OUT/checkpoint/ (the averaged weights unless --act-with online); OUT/checkpoint_online/
holds the online weights and the training state (--resume continues from it), OUT/step_N/ the
weights to act with every --checkpoint-every steps, OUT/metrics.jsonl and OUT/tb/ the curves.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.config import PRESETS, LossConfig, ModelConfig, TrainConfig
from .args import add_dataclass_arguments, dataclass_overrides


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="folder of episode bags, or a training cache (has index.json)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--preset", default="recommended", choices=sorted(PRESETS),
                   help="recommended: the defaults, the best measured recipe; paper: mean-squared value loss, uniform "
                        "replay, act with the online weights (the baselines' configuration) (default: recommended)")
    p.add_argument("--success-only", action="store_true", help="train only on successful episodes (BC-on-successes baseline)")
    p.add_argument("--tasks", nargs="+", default=None, help="only episodes of these task names")
    p.add_argument("--embodiment", type=Path, default=None,
                   help="the robot's embodiment file (config/embodiments/*.yaml); default: the one the recorder stored "
                        "in the bags, if any. The checkpoint carries it: the policy node refuses another robot")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint_online")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores / processes)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_arguments(p, ModelConfig, "model (defaults shaped by the data: action_dim, names, state_dim, image_size)")
    add_dataclass_arguments(p, LossConfig, "loss")
    add_dataclass_arguments(p, TrainConfig, "training")
    return p


def main(argv=None) -> int:
    from ..training import fit

    args = build_parser().parse_args(argv)
    overrides = {**dataclass_overrides(ModelConfig, args), **dataclass_overrides(LossConfig, args),
                 **dataclass_overrides(TrainConfig, args)}
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
