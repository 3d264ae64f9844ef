"""A training run's folder: the weights to act with, the online weights with the training state, the
snapshots, the curves (metrics.jsonl and tensorboard), and where a resume reads from.

  checkpoint/         the weights to act with (TrainConfig.act_with: the Polyak average by default)
  checkpoint_online/  the online weights and the training state; a resume continues from here
  step_N/             the weights to act with at step N (every checkpoint_every steps)
  metrics.jsonl, tb/  one row per log_every steps (tensorboard logs in tb/)
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core.checkpoint import TRAINING_STATE, save_checkpoint

CHECKPOINT = "checkpoint"
ONLINE = "checkpoint_online"


def resume_dir(out: Path) -> Path | None:
    """The folder a resume reads: checkpoint_online/, or checkpoint/ of a run made before that layout."""
    for name in (ONLINE, CHECKPOINT):
        if (out / name / TRAINING_STATE).is_file():
            return out / name
    return None


def check_same_data(data: Path, saved_shards: Path) -> None:
    """A resume reads the run's own shards: refuse `data` that is another folder (it would be ignored)."""
    saved_shards = saved_shards.resolve()
    if data.resolve() not in (saved_shards, saved_shards.parent):
        raise ValueError(f"--data {data} is not the data this run trained on ({saved_shards}, the shards of "
                         f"{saved_shards.parent}); resume with that data, or train into another --out")


def save_weights(out: Path, model, learner, train_cfg, meta: dict, done: int) -> None:
    """The online weights with the learner's state, the weights to act with, and every
    checkpoint_every steps a snapshot of the latter."""
    averaged = {**meta, "weights": f"Polyak average of the online weights, tau {train_cfg.target_tau}"}
    save_checkpoint(out / ONLINE, model, {**meta, "weights": "online"}, {"learner": learner.state_dict()})
    acting, acting_meta = ((learner.target, averaged) if train_cfg.act_with == "averaged"
                           else (model, {**meta, "weights": "online"}))
    save_checkpoint(out / CHECKPOINT, acting, acting_meta)
    if done % train_cfg.checkpoint_every == 0:
        save_checkpoint(out / f"step_{done:07d}", acting, acting_meta)


class Curves:
    """metrics.jsonl (appended: a resume continues it) and tensorboard scalars under train/. Rows past
    `start_step` were logged after the last save by a run that was killed: dropped, the resume redoes them."""

    def __init__(self, out: Path, start_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        metrics = out / "metrics.jsonl"
        if metrics.is_file():
            rows = metrics.read_text().splitlines(keepends=True)
            kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= start_step]
            if len(kept) != len(rows):
                metrics.write_text("".join(kept))
        self.writer = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
        self.file = open(out / "metrics.jsonl", "a")

    def add(self, step: int, wall_time_s: float, info: dict) -> None:
        for k, v in info.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        self.file.write(json.dumps({"step": step, "wall_time_s": wall_time_s, **info}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.writer.close()
        self.file.close()
