"""What a policy needs before its first tick: the robot it drives (the checkpoint's embodiment, checked
against the node's) and how an instruction becomes the embedding the model reads."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..core.text import normalize_instruction
from ..paths import DEFAULT_EMBODIMENT, resolve_data_path
from ..robot.embodiment import Embodiment

Encoder = Callable[[str], np.ndarray]


def embodiment_for(checkpoint: Path, requested: str, model_cfg) -> Embodiment:
    """The embodiment a checkpoint drives: its own (config.json "embodiment"), checked against the
    node's `embodiment` file when one is given; a checkpoint without one (trained before embodiment
    files) gets the node's file, default the simulated arm's, checked against the model's layout.
    Raises ValueError listing every mismatch: a model only drives the robot it was trained for."""
    from ..core.checkpoint_files import ENSEMBLE_KEY, read_config  # no torch: the ONNX Runtime node uses this too
    from ..robot.embodiment import compatibility_problems, load_embodiment, model_layout_problems

    try:
        config = read_config(checkpoint)
        if ENSEMBLE_KEY in config:  # an ensemble acts for its members' robot
            config = read_config(Path(checkpoint) / config[ENSEMBLE_KEY][0])
        saved = config.get("embodiment")
    except FileNotFoundError:
        saved = None
    if isinstance(saved, dict):
        trained = Embodiment.from_dict(saved)
        if not requested.strip():
            return trained
        robot = load_embodiment(resolve_data_path(requested))
        problems = compatibility_problems(trained, robot)
        if problems:
            raise ValueError(f"checkpoint {checkpoint} was trained for embodiment {trained.name!r}, not for "
                             f"{robot.name!r} ({requested}): " + "; ".join(problems))
        return robot
    robot = load_embodiment(resolve_data_path(requested.strip() or DEFAULT_EMBODIMENT))
    if model_cfg.state_dim == 0:  # a model without state reads none
        robot.state.topic = ""
    problems = model_layout_problems(robot, model_cfg.action_names, model_cfg.state_dim,
                                     model_cfg.cameras if model_cfg.image_size else 0)
    if problems:
        raise ValueError(f"checkpoint {checkpoint} carries no embodiment and does not fit {robot.name!r} "
                         f"({requested or DEFAULT_EMBODIMENT}): " + "; ".join(problems)
                         + "; set the parameter 'embodiment' to the robot's file")
    return robot


def instruction_encoder(known: dict[str, np.ndarray]) -> Encoder:
    """Instruction -> embedding: the export's table of training instructions first; any other text through
    all-MiniLM-L6-v2 (sentence-transformers, which imports torch), loaded only when first needed."""
    state: dict = {}

    def encode(text: str) -> np.ndarray:
        key = normalize_instruction(text)
        if key in known:
            return known[key]
        if "encoder" not in state:
            try:
                from ..core.text import shared_encoder

                state["encoder"] = shared_encoder()
            except ImportError as exc:
                raise ValueError(f"instruction {key!r} is not one the policy was exported with "
                                 f"({sorted(known)}), and no sentence encoder is installed ({exc})") from exc
        return state["encoder"](key)

    return encode
