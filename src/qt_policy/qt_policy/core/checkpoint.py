"""Checkpoints: weights as safetensors, the configs as JSON beside them, optimizer state for resume."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoint_files import CONFIG, ENSEMBLE_KEY, TRAINING_STATE, WEIGHTS, read_config  # noqa: F401 (re-exported)
from .config import ModelConfig, from_dict, to_dict
from .model import QTransformer


def save_checkpoint(directory, model: QTransformer, metadata: dict | None = None, training_state: dict | None = None) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written checkpoint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic(directory / WEIGHTS, lambda p: save_file(tensors, str(p)))
    config = {"model": to_dict(model.cfg), **(metadata or {})}
    _atomic(directory / CONFIG, lambda p: p.write_text(json.dumps(config, indent=2)))
    if training_state is not None:
        _atomic(directory / TRAINING_STATE, lambda p: torch.save(training_state, p))
    return directory


def _atomic(path: Path, write):
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def load_model(directory, device: str | torch.device = "cpu") -> QTransformer:
    directory = Path(directory)
    cfg = from_dict(ModelConfig, read_config(directory)["model"])
    model = QTransformer(cfg)
    model.load_state_dict(load_file(str(directory / WEIGHTS), device="cpu"))
    return model.to(device).eval()


def load_training_state(directory) -> dict | None:
    path = Path(directory) / TRAINING_STATE
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


# ----- ensembles: a directory of member checkpoints that acts on their mean Q -------------------


def save_ensemble(directory, member_dirs: list, metadata: dict | None = None) -> Path:
    """Copy each member's weights and config into directory/member_<k>/ and list them in config.json."""
    import shutil

    if len(member_dirs) < 2:
        raise ValueError("an ensemble needs at least two member checkpoints")
    for src in map(Path, member_dirs):
        if ENSEMBLE_KEY in read_config(src):
            raise ValueError(f"{src} is itself an ensemble; list its members instead")
    load_policy_model(member_dirs)  # refuse members that cannot act together, before writing anything
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for k, src in enumerate(map(Path, member_dirs)):
        dst = directory / f"member_{k}"
        dst.mkdir(exist_ok=True)
        for name in (WEIGHTS, CONFIG):
            shutil.copyfile(src / name, dst / name)
        names.append(dst.name)
    config = {ENSEMBLE_KEY: names, **(metadata or {})}
    _atomic(directory / CONFIG, lambda p: p.write_text(json.dumps(config, indent=2)))
    return directory


def load_policy_model(directories, device: str | torch.device = "cpu"):
    """One checkpoint directory -> its model; an ensemble directory or several directories -> a QEnsemble."""
    from .ensemble import QEnsemble

    if isinstance(directories, (str, Path)):
        directories = [directories]
    members = []
    for d in map(Path, directories):
        names = read_config(d).get(ENSEMBLE_KEY)
        if names is None:
            members.append(load_model(d, device))
        else:
            members.extend(load_model(d / n, device) for n in names)
    return members[0] if len(members) == 1 else QEnsemble(members).to(device).eval()
