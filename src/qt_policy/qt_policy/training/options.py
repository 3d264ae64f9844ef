"""qt-train's flags: the run's own options, then one flag per config field (core/config_flags.py), so
the CLI, the presets and the checkpoint share one source of truth. Used by qt-train and qt-baselines."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.config import PRESETS, LossConfig, ModelConfig, TrainConfig
from ..core.config_flags import add_dataclass_arguments, dataclass_overrides


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qt-train", description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="folder of episode bags (converted into BAGS/_shards on first use; under torchrun run qt-convert first), a LeRobot v3.0 dataset, or a shard folder (has manifest.json)")
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


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The model, loss and training fields the user set on the command line."""
    return {**dataclass_overrides(ModelConfig, args), **dataclass_overrides(LossConfig, args),
            **dataclass_overrides(TrainConfig, args)}
