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
    with AnyReader([source], default_typestore=bf.get_episode_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == bf.ACTION_TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            bins.append(list(msg.bins))
            q.append(float(msg.q_value))
    has_bins = all(len(b) == ep.actions.shape[1] for b in bins) and bins
    return ep, (np.array(bins) if has_bins else None), np.array(q)


def decide_on_episode(model, ep, embed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `model` decides on the episode's frames (one observation pipeline, the episode's own
    history): greedy bins (T, d), greedy Q (T,), and Q over all bins given the bins chosen before,
    (T, d, num_bins)."""
    import torch

    from ..core.decoding import decode_from_context
    from ..data.observation import FrameHistory, prepare_cameras

    cfg = model.cfg
    history = FrameHistory(cfg.frames)
    windows = np.stack([history.push(prepare_cameras([ep.camera(k)[t] for k in range(ep.num_cameras)],
                                                     cfg.image_size, cfg.image_crop)) for t in range(len(ep))])
    text = torch.from_numpy(np.repeat(np.asarray(embed(ep.instruction), np.float32)[None], len(ep), 0))
    state = torch.from_numpy(ep.states) if cfg.state_dim and ep.states is not None else None
    with torch.no_grad():
        context = model.encode_context(torch.from_numpy(windows), text, state)
        out = decode_from_context(model, context)
        q_maps = model.q_values(context, out.bins)
    return out.bins.numpy(), out.q_value.numpy(), q_maps.numpy()
