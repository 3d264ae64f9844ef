"""Small random-weight models and checkpoints the tests decode with or start nodes on."""
from pathlib import Path

import torch

from qt_policy.core.config import ModelConfig
from qt_policy.core.model import QTransformer


def state_model(action_dim=3, num_bins=5, seed=0, **kw) -> QTransformer:
    torch.manual_seed(seed)
    cfg = ModelConfig(action_dim=action_dim, num_bins=num_bins, action_low=[-1.0] * action_dim, action_high=[1.0] * action_dim,
                      action_names=[f"a{i}" for i in range(action_dim)], image_size=0, state_dim=6, text_dim=8,
                      d_model=32, num_layers=2, num_heads=4, **kw)
    model = QTransformer(cfg).eval()
    with torch.no_grad():  # spread the head so argmaxes are well separated and ties impossible
        model.head_weight.mul_(4.0)
    return model


def random_context(model, batch=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    text = torch.randn(batch, cfg.text_dim, generator=g)
    state = torch.randn(batch, cfg.state_dim, generator=g) if cfg.state_dim else None
    images = None
    if cfg.image_size:
        images = torch.randint(0, 256, (batch,) + cfg.image_shape(), generator=g, dtype=torch.uint8)
    return images, text, state


def tiny_checkpoint(path: Path) -> Path:
    import torch

    from qt_policy.core.checkpoint import save_checkpoint
    from qt_policy.core.config import ModelConfig
    from qt_policy.core.model import QTransformer

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=64, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32, num_layers=1,
                      num_heads=2, state_dim=4, action_names=["dx", "dy", "dz", "gripper"])
    return save_checkpoint(path, QTransformer(cfg))
