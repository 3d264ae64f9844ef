"""Replaying a recorded episode through a model: the episode as the bag (or LeRobot folder) holds it,
with what the policy recorded, and what a checkpoint decides on the same frames. Used by qt-view and
by the parity check (research/parity.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_episode(source: Path, episode: int = 0):
    """(EpisodeData, recorded bins (T, d) or None, recorded greedy Q (T,) or None)."""
    from ..data.lerobot import is_lerobot_dataset, read_lerobot_episodes

    if is_lerobot_dataset(source):
        for _, ep in read_lerobot_episodes(source):
            if ep.episode_id == f"lerobot_{episode:06d}":
                return ep, None, None
        raise SystemExit(f"error: {source} has no episode {episode}")
    from rosbags.highlevel import AnyReader

    from ..data import bag_format as bf
    from ..data.bag_io import read_episode_bag

    ep = read_episode_bag(source)
    bins, q = [], []
    ts = bf.get_episode_typestore()
    with AnyReader([source], default_typestore=ts) as reader:
        conns = [c for c in reader.connections if c.topic == bf.ACTION_TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = bf.deserialize(ts, raw, conn.msgtype)
            bins.append(list(msg.bins))
            q.append(float(msg.q_value))
    has_bins = all(len(b) == ep.actions.shape[1] for b in bins) and bins
    return ep, (np.array(bins) if has_bins else None), np.array(q)


def decide_on_episode(policy, ep, embed) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """What `policy` decides on the episode's frames, through the one acting API (inference/backends.py
    `act`, the node's and the evaluation's): the same observation pipeline, the episode's own frame
    history. `policy`: a torch model or ensemble, or a backend (an ONNX export acts too). Returns greedy
    bins (T, d), greedy Q (T,), and for a torch model Q over all bins given the bins chosen before
    (T, d, num_bins; None otherwise)."""
    from ..data.observation import FrameHistory, prepare_cameras
    from ..inference.backends import as_policy

    acting = as_policy(policy)
    cfg = acting.cfg
    history = FrameHistory(cfg.frames)
    windows = np.stack([history.push(prepare_cameras([ep.camera(k)[t] for k in range(ep.num_cameras)],
                                                     cfg.image_size, cfg.image_crop))
                        for t in range(len(ep))]) if cfg.image_size else None
    text = np.repeat(np.asarray(embed(ep.instruction), np.float32)[None], len(ep), 0)
    state = ep.states.astype(np.float32) if cfg.state_dim and ep.states is not None else None
    out = acting.act(windows, text, state)
    return out.bins, out.q_value, _q_maps(getattr(acting, "model", None), windows, text, state, out.bins)


def _q_maps(model, windows, text, state, bins) -> np.ndarray | None:
    """Q over every bin of each dimension after the chosen ones (teacher forcing); torch models only."""
    from ..core.model import QTransformer

    if not isinstance(model, QTransformer):
        return None
    import torch

    as_tensor = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        context = model.encode_context(as_tensor(windows), as_tensor(text), as_tensor(state))
        return model.q_values(context, torch.from_numpy(bins)).numpy()
