"""Configuration dataclasses: the one source of truth for the model, the loss and training.

The CLI builds its flags from these fields and the ROS nodes declare their parameters from them,
so a default changed here changes everywhere. Each config round-trips through a plain dict (JSON /
YAML) and is saved next to the weights it describes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Type, TypeVar

T = TypeVar("T")


@dataclass
class ModelConfig:
    """Q-Transformer network. Defaults are sized to train and act on 2 CPU cores."""

    action_dim: int = 4  # action dimensions, decoded one after another (training takes it from the data)
    num_bins: int = 32  # the paper uses 256; on ~80k steps 32 learnt faster (docs/experiments/mixed-data.md)
    action_low: list[float] = field(default_factory=lambda: [-1.0, -1.0, -1.0, -1.0])  # lowest value of each dimension (bin 0)
    action_high: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])  # highest value of each dimension (last bin)
    action_names: list[str] = field(default_factory=lambda: ["dx", "dy", "dz", "gripper"])  # one per dimension, as the embodiment names them
    image_size: int = 64  # square RGB input; 0 means no camera (state-only model, used in tests)
    image_crop: str = "center"  # camera frame -> square input: "center" = centre crop, then resize (data/observation.py)
    frames: int = 2  # frame history length
    cameras: int = 1  # camera streams (the embodiment's cameras, e.g. scene + wrist), one token set each
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # stride-2 FiLM conv blocks
    tokens_per_frame: int = 8  # TokenLearner output tokens per frame
    text_dim: int = 384  # instruction embedding size (all-MiniLM-L6-v2)
    state_dim: int = 0  # proprioceptive state size; 0 means none
    d_model: int = 128  # Transformer width
    num_layers: int = 2  # Transformer decoder layers
    num_heads: int = 4  # attention heads (d_model must divide by it)
    mlp_ratio: int = 4  # feed-forward width = mlp_ratio x d_model
    dropout: float = 0.0  # dropout in the Transformer layers

    def __post_init__(self):
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            raise ValueError("action_low/action_high must have action_dim entries")
        if len(self.action_names) != self.action_dim:
            raise ValueError("action_names must have action_dim entries")
        if self.d_model % self.num_heads:
            raise ValueError("d_model must be divisible by num_heads")
        if self.image_crop not in ("center",):  # data.observation.CROP_RULES (core imports nothing from data)
            raise ValueError(f"image_crop must be 'center', got {self.image_crop!r}")
        if self.cameras < 1:
            raise ValueError(f"cameras must be >= 1, got {self.cameras}")
        if self.image_size == 0 and self.state_dim == 0:
            raise ValueError("the model needs a camera (image_size > 0) or a state (state_dim > 0)")

    def image_shape(self) -> tuple[int, ...]:
        """One sample's camera input: (F, H, W, 3) for one camera, (F, K, H, W, 3) for K cameras."""
        return (self.frames,) + ((self.cameras,) if self.cameras > 1 else ()) + (self.image_size, self.image_size, 3)


@dataclass
class LossConfig:
    """Q-Transformer loss. Each of the three method components can be switched off for ablations."""

    gamma: float = 0.98  # discount per time step
    n_step: int = 4  # n-step return across time steps; 1 disables
    conservative_weight: float = 5.0  # alpha (x mean over non-dataset bins of Q^2); 0 disables; tuned in docs/experiments/mixed-data.md
    use_mc_lower_bound: bool = True  # target = max(MC return-to-go, bootstrapped target)
    # How Q (a sigmoid) is pulled to its targets: "bce" (cross-entropy with the soft target) or "mse"
    # as in the paper: same minimiser, but the cross-entropy's gradient does not vanish as Q nears 0
    value_loss: str = "bce"

    def __post_init__(self):
        if self.value_loss not in ("mse", "bce"):
            raise ValueError(f"value_loss must be 'mse' or 'bce', got {self.value_loss!r}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping for one training run."""

    steps: int = 3000  # gradient steps; every measured result used 3,000 (docs/experiments/mixed-data.md)
    batch_size: int = 64  # transitions per gradient step
    lr: float = 3e-4  # AdamW learning rate
    lr_schedule: str = "constant"  # constant | cosine (decays to 0 at `steps`: a steadier final network)
    weight_decay: float = 1e-4  # AdamW weight decay
    grad_clip: float = 1.0  # gradient norm clip
    target_tau: float = 0.005  # Polyak rate of the target network (= the averaged weights, act_with="averaged")
    seed: int = 0  # seeds the weights, the batches and the image shifts
    algo: str = "qt"  # "qt" (Q-Transformer) or "bc" (behaviour cloning: cross-entropy on the dataset bins)
    # share of each batch drawn from successful episodes only (the rest from all episodes);
    # 0 samples uniformly over all steps, as the paper's replay does (docs/experiments/mixed-data.md)
    success_batch_fraction: float = 0.9
    # the weights OUT/checkpoint/ holds, the ones to act with: "averaged" (the Polyak average, rate
    # target_tau; steadier greedy choices) or "online" (the last gradient step's, as the paper acts)
    act_with: str = "averaged"
    # random shift of every training image by up to this many pixels (DrQ; 0 = none); acting never shifts
    augment_shift: int = 0
    log_every: int = 100  # steps between metrics.jsonl / tensorboard rows
    checkpoint_every: int = 2000  # steps between OUT/step_N/ snapshots (and checkpoint/ saves)
    num_workers: int = 0  # unused: batches are drawn in the training process

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.success_batch_fraction <= 1.0:
            raise ValueError(f"success_batch_fraction must lie in [0, 1], got {self.success_batch_fraction}")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift must be >= 0 pixels, got {self.augment_shift}")
        if self.act_with not in ("averaged", "online"):
            raise ValueError(f"act_with must be 'averaged' or 'online', got {self.act_with!r}")
        if self.algo not in ("qt", "bc"):
            raise ValueError(f"algo must be 'qt' or 'bc', got {self.algo!r}")


#: Named starting points: a preset's fields replace the defaults, and explicit settings replace a
#: preset's. The defaults themselves are the best measured recipe (cross-entropy value loss, nine
#: tenths of each batch from successes, acting with the averaged weights). "paper" is the loss and
#: replay of arXiv 2309.10150 as the baselines ran it (on this project's network size and bins).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "recommended": {},
    "paper": {"loss": {"value_loss": "mse"}, "train": {"success_batch_fraction": 0.0, "act_with": "online"}},
}


def preset(name: str, section: str) -> dict[str, Any]:
    """The fields preset `name` sets in `section` ("model", "loss" or "train")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return dict(PRESETS[name].get(section, {}))


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: Type[T], data: dict[str, Any] | None) -> T:
    """Build a config from a dict, rejecting unknown keys with a clear message."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known: {sorted(names)}")
    return cls(**data)
