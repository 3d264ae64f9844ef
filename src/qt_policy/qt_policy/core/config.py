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


#: the training algorithms (core/algorithms.py implements them)
ALGOS = ("qt", "cql", "iql", "bc", "rt1_bc", "dt")

#: extra per-dimension heads a model may carry: name -> outputs per action position (bins or 1)
EXTRA_HEADS = {"behaviour": "bins", "q": "bins", "value": 1}


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
    # heads beside the acting head ("head": Q logits for qt/cql, policy logits for the imitation and iql),
    # added by the algorithm that trains them: "behaviour" (the data's bin distribution, for the support
    # conservatism), "q" (IQL's Q), "value" (IQL's V, one value per prefix)
    extra_heads: list[str] = field(default_factory=list)
    independent_dims: bool = False  # RT-1-style: no dimension sees the bins chosen before it (rt1_bc)
    return_token: bool = False  # Decision Transformer: the context holds the return-to-go asked for (dt)
    target_return: float = 1.0  # the return-to-go a return-conditioned model acts for (1 = success)

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
        unknown_heads = sorted(set(self.extra_heads) - set(EXTRA_HEADS))
        if unknown_heads:
            raise ValueError(f"unknown extra_heads {unknown_heads}; known: {list(EXTRA_HEADS)}")
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
    # the pull of each conservatively regularized bin toward Q = 0, relative to one dataset sample's TD
    # term: a per-bin strength, the same at any number of bins (before 2026-12-07 alpha was averaged over
    # the bins: alpha 5 at 32 bins is 5/31 = 0.161 here); 0 disables
    conservative_weight: float = 0.161
    # which bins that pull acts on: "zero" = every bin but the dataset's, as the paper; "support" = only
    # bins the data rarely takes in such a state (a behaviour head's probability below support_threshold
    # x its most likely bin's), so a better action the data holds is not pulled down with the unseen ones
    conservatism: str = "support"
    support_threshold: float = 0.1  # "support": share of the most likely bin's probability a bin needs to be spared
    use_mc_lower_bound: bool = True  # target = max(MC return-to-go, bootstrapped target)
    # How Q (a sigmoid) is pulled to its targets: "bce" (cross-entropy with the soft target) or "mse"
    # as in the paper: same minimiser, but the cross-entropy's gradient does not vanish as Q nears 0
    value_loss: str = "bce"
    cql_weight: float = 1.0  # cql: weight of logsumexp_b Q-logit - dataset Q-logit, per dimension
    expectile: float = 0.7  # iql: the expectile of Q that V learns (0.5 = the mean; 1 = the max)
    awr_temperature: float = 10.0  # iql: policy weights exp(temperature x advantage), capped at 100

    def __post_init__(self):
        if self.value_loss not in ("mse", "bce"):
            raise ValueError(f"value_loss must be 'mse' or 'bce', got {self.value_loss!r}")
        if self.conservatism not in ("zero", "support"):
            raise ValueError(f"conservatism must be 'zero' or 'support', got {self.conservatism!r}")
        if not 0.0 < self.support_threshold <= 1.0:
            raise ValueError(f"support_threshold must lie in (0, 1], got {self.support_threshold}")
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must lie in (0, 1), got {self.expectile}")


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
    # qt (Q-Transformer); cql, iql (offline RL baselines on the same backbone); bc (autoregressive behaviour
    # cloning: cross-entropy on the dataset bins); rt1_bc (BC, every dimension predicted independently);
    # dt (Decision Transformer: BC told the return-to-go, acting for success). core/algorithms.py
    algo: str = "qt"
    # share of each batch drawn from successful episodes only (the rest from all episodes);
    # 0 samples uniformly over all steps, as the paper's replay does (docs/experiments/mixed-data.md)
    success_batch_fraction: float = 0.9
    # which steps of a failed episode train: "all", or "interventions" (only those a person drove, taking over
    # from the policy: with --algo bc the HG-DAgger baseline, successful episodes whole plus the corrections)
    failure_steps: str = "all"
    # the weights OUT/checkpoint/ holds, the ones to act with: "averaged" (the Polyak average, rate
    # target_tau; steadier greedy choices) or "online" (the last gradient step's, as the paper acts)
    act_with: str = "averaged"
    # random shift of every training image by up to this many pixels (DrQ; 0 = none); acting never shifts
    augment_shift: int = 0
    # memory (MB) for the episodes a training process holds, shared by its loader workers; data that fits is
    # held whole and sampled exactly uniformly, larger data streams from the shards through a buffer this size
    # (data/dataset.py). 1,536 holds the 700-episode Meta-World data (1.0 GB at 64x64) and keeps a run under
    # 3 GB of memory whatever the data's size (docs/scale.md)
    buffer_mb: float = 1536.0
    # processes assembling batches beside the training loop (torch DataLoader, pinned memory on CUDA); 0 = in
    # the loop, drawing the very batches every committed run drew. 1 worker trained ~18% faster on the 2-core
    # CPU machine (noisy, docs/scale.md) but draws other batches; on a GPU use several
    loader_workers: int = 0
    amp: bool = False  # bfloat16 autocast of the forward passes on CUDA (mixed precision); CPU runs refuse it
    log_every: int = 100  # steps between metrics.jsonl / tensorboard rows
    checkpoint_every: int = 2000  # steps between OUT/step_N/ snapshots
    # steps between saves of checkpoint_online/ and checkpoint/: what a resume continues from after a kill
    save_every: int = 500

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.success_batch_fraction <= 1.0:
            raise ValueError(f"success_batch_fraction must lie in [0, 1], got {self.success_batch_fraction}")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift must be >= 0 pixels, got {self.augment_shift}")
        if self.failure_steps not in ("all", "interventions"):
            raise ValueError(f"failure_steps must be 'all' or 'interventions', got {self.failure_steps!r}")
        if self.act_with not in ("averaged", "online"):
            raise ValueError(f"act_with must be 'averaged' or 'online', got {self.act_with!r}")
        if self.buffer_mb <= 0 or self.loader_workers < 0:
            raise ValueError(f"buffer_mb must be > 0 and loader_workers >= 0, got {self.buffer_mb}, {self.loader_workers}")
        if min(self.save_every, self.checkpoint_every, self.log_every) < 1:
            raise ValueError("save_every, checkpoint_every and log_every must be >= 1 step")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")


#: Named starting points: a preset's fields replace the defaults, and explicit settings replace a
#: preset's. The defaults themselves are the best measured recipe (cross-entropy value loss, nine
#: tenths of each batch from successes, acting with the averaged weights). "paper" is the loss and
#: replay of arXiv 2309.10150 as the baselines ran it (on this project's network size and bins).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "recommended": {},
    "paper": {"loss": {"value_loss": "mse", "conservatism": "zero", "conservative_weight": 0.161},
              "train": {"success_batch_fraction": 0.0, "act_with": "online"}},
}


def preset(name: str, section: str) -> dict[str, Any]:
    """The fields preset `name` sets in `section` ("model", "loss" or "train")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return dict(PRESETS[name].get(section, {}))


def upgrade_loss_dict(loss: dict[str, Any], num_bins: int) -> dict[str, Any]:
    """A saved loss config as today's fields mean it: configs saved before `conservatism` existed averaged
    conservative_weight over the num_bins - 1 unseen bins (today it is per bin)."""
    loss = dict(loss)
    if "conservatism" not in loss:
        loss["conservatism"] = "zero"
        loss["conservative_weight"] = loss.get("conservative_weight", 5.0) / max(num_bins - 1, 1)
    return loss


RETIRED_TRAIN_FIELDS = ("num_workers",)  # saved by older runs; never did anything


def upgrade_train_dict(train: dict[str, Any]) -> dict[str, Any]:
    """A saved training config as today's fields mean it: runs made before `act_with` existed wrote the
    online weights to checkpoint/; retired fields are dropped."""
    return {"act_with": "online", **{k: v for k, v in train.items() if k not in RETIRED_TRAIN_FIELDS}}


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
