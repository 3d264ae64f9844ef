"""Sample n-step transitions from the training cache without loading it into RAM.

Each episode's arrays are memory-mapped (`cache.open_episode_arrays`); a batch reads only the frames
it needs. Returns-to-go and n-step bookkeeping are computed once per episode (a few floats a step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..core.batch import Observation, TransitionBatch
from ..core.config import LossConfig, ModelConfig
from ..core.discretizer import Discretizer
from ..core.returns import n_step_returns, returns_to_go
from .cache import ARRAY_NAMES, load_index, open_episode_arrays
from .file_limit import ensure_open_files
from .observation import frame_window


@dataclass
class _Episode:
    arrays: dict
    bins: np.ndarray
    text: np.ndarray
    reward_sum: np.ndarray
    discount: np.ndarray
    next_index: np.ndarray
    mc: np.ndarray



class TransitionSampler:
    def __init__(self, cache_dir, model_cfg: ModelConfig, loss_cfg: LossConfig,
                 embed: Callable[[str], np.ndarray], episode_filter: Callable[[dict], bool] | None = None):
        self.model_cfg = model_cfg
        self.index = load_index(cache_dir)
        entries = [e for e in self.index["episodes"] if episode_filter is None or episode_filter(e)]
        if not entries:
            raise ValueError(f"no episodes in {cache_dir} pass the filter")
        self.entries = entries  # index entries of self.episodes, in the same order
        disc = Discretizer(tuple(model_cfg.action_low), tuple(model_cfg.action_high), model_cfg.num_bins)
        # every memory map holds a file descriptor: check the limit before opening the first one
        ensure_open_files(len(entries) * len(ARRAY_NAMES), f"the training cache ({len(entries)} episodes)")
        self.episodes: list[_Episode] = []
        for e in entries:
            arrays = open_episode_arrays(cache_dir, e)
            actions = np.asarray(arrays["actions"])
            if actions.shape[1] != model_cfg.action_dim:
                raise ValueError(f"episode {e['id']} has {actions.shape[1]} action dimensions, the model {model_cfg.action_dim}")
            rewards = np.asarray(arrays["rewards"])
            sums, discount, nxt = n_step_returns(rewards, loss_cfg.gamma, loss_cfg.n_step)
            self.episodes.append(_Episode(arrays, disc.to_bins(actions), embed(e["instruction"]).astype(np.float32),
                                          sums, discount, nxt, returns_to_go(rewards, loss_cfg.gamma)))
        lengths = np.array([len(ep.bins) for ep in self.episodes])
        self.num_steps = int(lengths.sum())
        self._step_weights = lengths / lengths.sum()
        successful = np.array([bool(e["success"]) for e in entries])
        self.num_successes = int(successful.sum())
        success_lengths = np.where(successful, lengths, 0)
        self._success_step_weights = success_lengths / max(1, success_lengths.sum())

    def __len__(self) -> int:
        return self.num_steps

    def observation(self, ep_ids: np.ndarray, steps: np.ndarray) -> Observation:
        """What the model sees at step steps[k] of episode ep_ids[k] (frame history included)."""
        cfg = self.model_cfg
        text = torch.from_numpy(np.stack([self.episodes[i].text for i in ep_ids]))
        images = state = None
        if cfg.image_size:
            windows = frame_window(steps, cfg.frames)
            images = torch.from_numpy(np.stack([self.episodes[i].arrays["images"][w] for i, w in zip(ep_ids, windows)]))
        if cfg.state_dim:
            state = torch.from_numpy(np.stack([self.episodes[i].arrays["states"][t] for i, t in zip(ep_ids, steps)]).astype(np.float32))
        return Observation(text, images, state)

    def sample(self, batch_size: int, rng: np.random.Generator, success_fraction: float = 0.0) -> TransitionBatch:
        """A batch of transitions, uniform over all steps; with success_fraction f > 0 the first
        round(f * batch_size) come from successful episodes only (uniform over their steps) and the
        rest from all episodes, so scarce successes are seen more often without dropping failures."""
        if not 0.0 <= success_fraction <= 1.0:
            raise ValueError(f"success_fraction must lie in [0, 1], got {success_fraction}")
        from_successes = int(round(success_fraction * batch_size))
        if self.num_successes == len(self.episodes):  # only successes (e.g. --success-only): one uniform draw
            from_successes = 0                          # is the same distribution, and keeps the batches of f = 0
        if from_successes and not self.num_successes:
            raise ValueError("success_fraction > 0 needs at least one successful episode in the data")
        ep_ids = rng.choice(len(self.episodes), size=batch_size - from_successes, p=self._step_weights)
        if from_successes:
            ep_ids = np.concatenate([rng.choice(len(self.episodes), size=from_successes, p=self._success_step_weights), ep_ids])
        steps = np.array([rng.integers(len(self.episodes[i].bins)) for i in ep_ids])
        eps = [self.episodes[i] for i in ep_ids]
        nxt = np.array([ep.next_index[t] for ep, t in zip(eps, steps)])
        f = lambda name: torch.tensor(np.array([getattr(ep, name)[t] for ep, t in zip(eps, steps)]))  # noqa: E731
        return TransitionBatch(
            obs=self.observation(ep_ids, steps),
            action_bins=torch.from_numpy(np.stack([ep.bins[t] for ep, t in zip(eps, steps)])),
            reward_sum=f("reward_sum").float(),
            discount=f("discount").float(),
            next_obs=self.observation(ep_ids, nxt),
            mc_return=f("mc").float(),
        )
