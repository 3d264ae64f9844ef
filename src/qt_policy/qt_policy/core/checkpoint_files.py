"""The names and the JSON of a checkpoint folder, readable without torch (the ONNX Runtime node reads them)."""
from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINING_STATE = "training_state.pt"
#: config.json key of an ensemble folder: its member folders, which act on their mean Q
ENSEMBLE_KEY = "ensemble_members"


def read_config(directory) -> dict:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG} in checkpoint directory {directory}")
    return json.loads(path.read_text())
