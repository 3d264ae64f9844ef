"""A PolicyRunner on a small random checkpoint with a fake instruction encoder, and camera frames."""
import zlib

import numpy as np

from qt_policy.runtime.policy_config import PolicyNodeConfig
from qt_policy.runtime.policy_runner import PolicyRunner

SMALL = dict(image_size=32, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32,
             num_layers=1, num_heads=2, text_dim=384)


def fake_encoder(text: str) -> np.ndarray:
    """Deterministic 384-d unit vector per text (no sentence-transformers needed)."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    v = rng.standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


def make_runner(checkpoint, **overrides):
    cfg = PolicyNodeConfig(checkpoint=str(checkpoint), **overrides)
    return PolicyRunner.from_config(cfg, encoder=fake_encoder)


def frame(seed=0, shape=(48, 64, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
