"""Does an export act as its checkpoint does? The same observations through both backends."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def random_observations(cfg, count: int, seed: int = 0, batch: int = 25):
    """Batches of random observations in the model's layout: uint8 frames, unit-norm text, normal state."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < count:
        b = min(batch, count - done)
        images = (rng.integers(0, 256, (b,) + cfg.image_shape(), dtype=np.uint8)
                  if cfg.image_size else None)
        text = rng.normal(size=(b, cfg.text_dim)).astype(np.float32)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        state = rng.normal(size=(b, cfg.state_dim)).astype(np.float32) if cfg.state_dim else None
        done += b
        yield images, text, state


def compare(reference, candidate, batches, tie: float = 1e-5) -> dict:
    """Observations whose bins differ; of those, the ties (at the first differing dimension both chosen
    bins have the same greedy Q within `tie`: the argmax of two equal values, decided by rounding); and
    the largest |greedy Q| / |per-dimension Q| difference over the observations with the same bins."""
    n = differ = ties = 0
    max_q = 0.0
    for images, text, state in batches:
        a, b = reference.act(images, text, state), candidate.act(images, text, state)
        n += len(text)
        same = np.all(a.bins == b.bins, axis=1)
        for k in np.flatnonzero(~same):
            first = int(np.argmax(a.bins[k] != b.bins[k]))
            differ += 1
            ties += int(abs(float(a.dim_q[k, first]) - float(b.dim_q[k, first])) < tie)
        if same.any():
            max_q = max(max_q, float(np.abs(a.q_value[same] - b.q_value[same]).max()),
                        float(np.abs(a.dim_q[same] - b.dim_q[same]).max()))
    return {"observations": n, "bins_differ": differ, "ties": ties, "max_q_difference": max_q}


def compare_backends(checkpoint: Path, export_dir: Path, random: int = 500, batches=()) -> dict:
    """torch on `checkpoint` against onnxruntime on `export_dir`: `random` random observations, then `batches`."""
    from .backends import load_policy

    torch_policy = load_policy(checkpoint, "torch")
    onnx_policy = load_policy(export_dir, "onnxruntime", threads=1)
    obs = list(random_observations(torch_policy.cfg, random)) + list(batches)
    return compare(torch_policy, onnx_policy, obs)
