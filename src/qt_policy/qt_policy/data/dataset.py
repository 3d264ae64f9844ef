"""Sample n-step transitions from the shards with a bounded memory.

A sampler holds episodes in memory, up to `buffer_mb`. When the data it reads fits (the 700-episode
Meta-World data at 64x64 is 1.0 GB), it holds all of it in conversion order and draws exactly as a
uniform replay does: each step equally likely, a share of the batch from successful episodes. Larger
data streams through the buffer: after every batch the oldest episodes leave and the next ones of the
shards come in (each stays equally long, so every step keeps the same chance over a pass), and the
buffer keeps the data's ratio of success steps to failure steps, drawing from the two streams.
Returns-to-go and n-step bookkeeping are computed once per episode (a few floats a step).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.batch import Observation, TransitionBatch
from ..core.config import LossConfig, ModelConfig, TrainConfig
from ..core.discretizer import make_discretizer
from ..core.returns import n_step_returns, returns_to_go
from .observation import frame_window
from .shard_format import STREAMS, count_kept, kept_groups, load_manifest
from .shard_reader import endless_episodes, read_shard, slot_shards, stream_shards

DEFAULT_BUFFER_MB = TrainConfig.buffer_mb  # one default, the training config's


@dataclass
class _Episode:
    arrays: dict
    bins: np.ndarray
    text: np.ndarray
    reward_sum: np.ndarray
    discount: np.ndarray
    next_index: np.ndarray
    mc: np.ndarray
    meta: dict  # the episode's meta.json: id, instruction, task, success, seq, ...
    trainable: np.ndarray | None = None  # the steps a batch may draw (None: all; failure_steps "interventions")

    @property
    def seq(self) -> int:
        return int(self.meta["seq"])

    @property
    def success(self) -> bool:
        return bool(self.meta["success"])

    @property
    def steps(self) -> int:
        return len(self.bins)

    @property
    def weight(self) -> int:
        """Steps a batch may draw from it."""
        return self.steps if self.trainable is None else len(self.trainable)

    def draw_step(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.steps)) if self.trainable is None else int(self.trainable[rng.integers(self.weight)])


class TransitionSampler:
    """Batches of transitions from a shard folder, for loader slot `slot` of `slots` (rank x worker)."""

    def __init__(self, folder, model_cfg: ModelConfig, loss_cfg: LossConfig, embed: Callable[[str], np.ndarray],
                 episode_filter: Callable[[dict], bool] | None = None, *, slot: int = 0, slots: int = 1,
                 buffer_mb: float = DEFAULT_BUFFER_MB, stream_seed=0, failure_steps: str = "all"):
        self.folder, self.model_cfg, self.loss_cfg, self.embed = Path(folder), model_cfg, loss_cfg, embed
        self.keep, self.failure_steps = episode_filter, failure_steps
        manifest = load_manifest(folder)
        counts = count_kept(manifest, episode_filter, failure_steps)  # the whole kept data, whatever the slot
        if not counts["episodes"]:
            raise ValueError(f"no episodes in {folder} pass the filter")
        self.num_episodes, self.num_steps, self.num_successes = counts["episodes"], counts["steps"], counts["successes"]
        self._disc = make_discretizer(model_cfg.action_low, model_cfg.action_high, model_cfg.num_bins)
        shards = {s: slot_shards(v, slot, slots) if v else [] for s, v in stream_shards(manifest, episode_filter).items()}
        slot_groups = {s: kept_groups(manifest, episode_filter, shards[s]) for s in STREAMS}
        slot_steps = {s: sum(g["steps"] for g in slot_groups[s]) for s in STREAMS}
        self.capacity_steps = int(buffer_mb * 2**20 // self._bytes_per_step(manifest))
        self.streaming = sum(slot_steps.values()) > self.capacity_steps
        self._success_share = slot_steps[STREAMS[0]] / max(1, sum(slot_steps.values()))
        rng = np.random.default_rng(stream_seed)
        self._streams = {s: endless_episodes(self.folder, shards[s], self.keep, rng) for s in STREAMS if shards[s]}
        self.episodes: list[_Episode] = []
        # of self.episodes, in order: steps held, steps a batch may draw, success
        self._lengths, self._weights, self._successful = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
        if self.streaming:
            self._refill()
        else:  # everything this slot reads fits: hold it whole, in conversion order
            held = [self._prepare(ep) for s in STREAMS for shard in shards[s]
                    for ep in read_shard(self.folder, shard["file"]) if self.keep is None or self.keep(ep["meta"])]
            self._hold(sorted(held, key=lambda e: e.seq))
        self._mean_steps = max(1.0, self.num_steps / self.num_episodes)
        self._reweight()

    def __len__(self) -> int:
        return self.num_steps

    def _bytes_per_step(self, manifest) -> int:
        """What one held step costs: its frames (all cameras), action and bins, state, and bookkeeping."""
        layouts = list(manifest["layouts"].values())
        frame = max(int(np.prod(lay["image_shape"])) * int(lay["cameras"]) for lay in layouts)
        d, s = self.model_cfg.action_dim, len(layouts[0]["state_names"])
        return frame + 12 * d + 4 * s + 28

    def _prepare(self, ep: dict) -> _Episode:
        arrays = {k: v for k, v in ep.items() if k != "meta"}
        actions = arrays["actions"]
        if actions.shape[1] != self.model_cfg.action_dim:
            raise ValueError(f"episode {ep['meta']['id']} has {actions.shape[1]} action dimensions, the model "
                             f"{self.model_cfg.action_dim}")
        rewards = arrays["rewards"]
        sums, discount, nxt = n_step_returns(rewards, self.loss_cfg.gamma, self.loss_cfg.n_step)
        trainable = None
        if self.failure_steps == "interventions" and not ep["meta"]["success"]:  # only what a person drove
            trainable = np.flatnonzero(arrays.get("interventions", np.zeros(len(actions), bool)))
        return _Episode(arrays, self._disc.to_bins(actions), np.asarray(self.embed(ep["meta"]["instruction"]), np.float32),
                        sums, discount, nxt, returns_to_go(rewards, self.loss_cfg.gamma), ep["meta"], trainable)

    def _refill(self) -> None:
        """Top the buffer up to its capacity, keeping the data's share of success steps (and at least one
        successful episode when the data has any: the success share of a batch draws from them)."""
        held = int(self._lengths.sum())
        held_success = int(self._lengths[self._successful].sum())
        new = []
        while held < self.capacity_steps or (not held_success and STREAMS[0] in self._streams):
            want = STREAMS[0] if held_success < self._success_share * (held + 1) else STREAMS[1]
            stream = self._streams.get(want) or next(iter(self._streams.values()))
            ep = self._prepare(next(stream))
            new.append(ep)
            held += ep.steps
            held_success += ep.steps if ep.success else 0
        self._hold(new)

    def _hold(self, new: list[_Episode]) -> None:
        self.episodes += new
        self._lengths = np.concatenate([self._lengths, np.array([e.steps for e in new], np.int64)])
        self._weights = np.concatenate([self._weights, np.array([e.weight for e in new], np.int64)])
        self._successful = np.concatenate([self._successful, np.array([e.success for e in new], bool)])

    def _drop_oldest(self, k: int) -> None:
        del self.episodes[:k]
        self._lengths, self._weights, self._successful = self._lengths[k:], self._weights[k:], self._successful[k:]

    def _reweight(self) -> None:
        lengths, successful = self._weights, self._successful
        self._step_weights = lengths / lengths.sum()
        self._held_successes = int(successful.sum())
        success_lengths = np.where(successful, lengths, 0)
        self._success_step_weights = success_lengths / max(1, success_lengths.sum())

    def observation(self, ep_ids: np.ndarray, steps: np.ndarray) -> Observation:
        """What the model sees at step steps[k] of held episode ep_ids[k] (frame history included)."""
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
        """A batch of transitions, uniform over the held steps; with success_fraction f > 0 the first
        round(f * batch_size) come from successful episodes only (uniform over their steps) and the
        rest from all episodes, so scarce successes are seen more often without dropping failures.
        Streaming, the oldest held episodes then make room for the next ones."""
        batch = self._draw(batch_size, rng, success_fraction)
        if self.streaming:
            self._drop_oldest(max(1, round(batch_size / self._mean_steps)))  # ~ one draw per held step
            self._refill()
            self._reweight()
        return batch

    def _draw(self, batch_size: int, rng: np.random.Generator, success_fraction: float) -> TransitionBatch:
        if not 0.0 <= success_fraction <= 1.0:
            raise ValueError(f"success_fraction must lie in [0, 1], got {success_fraction}")
        from_successes = int(round(success_fraction * batch_size))
        if self._held_successes == len(self.episodes):  # only successes (e.g. --success-only): one uniform draw
            from_successes = 0                           # is the same distribution, and keeps the batches of f = 0
        if from_successes and not self._held_successes:
            raise ValueError("success_fraction > 0 needs at least one successful episode in the data")
        ep_ids = rng.choice(len(self.episodes), size=batch_size - from_successes, p=self._step_weights)
        if from_successes:
            ep_ids = np.concatenate([rng.choice(len(self.episodes), size=from_successes, p=self._success_step_weights), ep_ids])
        steps = np.array([self.episodes[i].draw_step(rng) for i in ep_ids])
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
