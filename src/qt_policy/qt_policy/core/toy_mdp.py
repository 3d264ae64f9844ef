"""A small finite-horizon MDP with a known optimal Q*, for proving the algorithm end to end.

The agent moves along positions 0..3 within 6 steps; reaching position 3 gives reward 1 and ends
the episode. Each action has 2 dimensions of 4 bins (16 joint actions):
- a "key" action per position advances by one (what the demonstrations do);
- a "jump" action at position 0 advances by two: only the noisy data ever takes it, so the optimal
  policy must stitch it together with the demonstrations (imitation cannot);
- a "trap" action per position ends the episode with reward 0. It shares its first bin with the key,
  so the first dimension is only right if its Q maximises over the second dimension.
Everything else leaves the position unchanged. The state is the one-hot of (position, time).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batch import Observation, TransitionBatch
from .config import ModelConfig
from .returns import n_step_returns, returns_to_go

NUM_POSITIONS = 4
GOAL = 3
HORIZON = 6
NUM_BINS = 4
KEY = {0: (1, 2), 1: (2, 0), 2: (0, 3)}
TRAP = {0: (1, 3), 1: (2, 1), 2: (0, 1)}
JUMP = {0: ((3, 0), 2)}
STATE_DIM = NUM_POSITIONS * HORIZON
TEXT_DIM = 8


def step(pos: int, action: tuple[int, int]) -> tuple[int, float, bool]:
    """(next position, reward, episode over)."""
    if action == KEY[pos]:
        nxt = pos + 1
    elif pos in JUMP and action == JUMP[pos][0]:
        nxt = pos + JUMP[pos][1]
    elif action == TRAP[pos]:
        return pos, 0.0, True
    else:
        nxt = pos
    return nxt, float(nxt == GOAL), nxt == GOAL


def optimal_q(gamma: float) -> np.ndarray:
    """Q*[pos, t, a1, a2] for the non-terminal positions, by backward induction (time is part of the state)."""
    q = np.zeros((NUM_POSITIONS, HORIZON + 1, NUM_BINS, NUM_BINS))
    v = np.zeros((NUM_POSITIONS, HORIZON + 1))
    for t in range(HORIZON - 1, -1, -1):
        for pos in range(GOAL):
            for a1 in range(NUM_BINS):
                for a2 in range(NUM_BINS):
                    nxt, r, done = step(pos, (a1, a2))
                    last_step = t == HORIZON - 1
                    q[pos, t, a1, a2] = r + (0.0 if done or last_step else gamma * v[nxt, t + 1])
            v[pos, t] = q[pos, t].max()
    return q[:GOAL, :HORIZON]


def state_vector(pos: int, t: int) -> np.ndarray:
    s = np.zeros(STATE_DIM, dtype=np.float32)
    s[pos * HORIZON + t] = 1.0
    return s


def model_config(**overrides) -> ModelConfig:
    kw = dict(action_dim=2, num_bins=NUM_BINS, action_low=[-1.0, -1.0], action_high=[1.0, 1.0], action_names=["a1", "a2"],
              image_size=0, state_dim=STATE_DIM, text_dim=TEXT_DIM, d_model=64, num_layers=2, num_heads=4)
    kw.update(overrides)
    return ModelConfig(**kw)


@dataclass
class ToyEpisode:
    positions: list[int]  # position at each step t
    actions: list[tuple[int, int]]
    rewards: list[float]


def collect(num_episodes: int, expert_fraction: float, rng: np.random.Generator) -> list[ToyEpisode]:
    """Mixed-quality data: a few near-expert demos (key actions), mostly noisy episodes."""
    episodes = []
    for _ in range(num_episodes):
        expert = rng.random() < expert_fraction
        pos, ep = 0, ToyEpisode([], [], [])
        for t in range(HORIZON):
            u = rng.random()
            if u < (0.9 if expert else 0.2):
                action = KEY[pos]
            elif not expert and pos in JUMP and u < 0.4:  # a noisy skill that sometimes jumps
                action = JUMP[pos][0]
            else:
                action = (int(rng.integers(NUM_BINS)), int(rng.integers(NUM_BINS)))
            nxt, r, done = step(pos, action)
            ep.positions.append(pos)
            ep.actions.append(action)
            ep.rewards.append(r)
            pos = nxt
            if done:
                break
        episodes.append(ep)
    return episodes


class ToyTransitions:
    """All n-step transitions of the toy episodes, sampled into TransitionBatches as the dataset's
    TransitionSampler does: uniformly, or with a share of each batch from successful episodes."""

    def __init__(self, episodes: list[ToyEpisode], gamma: float, n_step: int):
        s, a, rs, disc, ns, mc, succ = [], [], [], [], [], [], []
        for ep in episodes:
            states = [state_vector(p, t) for t, p in enumerate(ep.positions)]
            sums, discount, index = n_step_returns(ep.rewards, gamma, n_step)
            rtg = returns_to_go(ep.rewards, gamma)
            for t in range(len(ep.rewards)):
                s.append(states[t]); a.append(ep.actions[t]); rs.append(sums[t]); disc.append(discount[t])
                ns.append(states[index[t]]); mc.append(rtg[t]); succ.append(sum(ep.rewards) > 0)
        self.state = torch.tensor(np.array(s))
        self.actions = torch.tensor(np.array(a), dtype=torch.long)
        self.reward_sum, self.discount = torch.tensor(np.array(rs)), torch.tensor(np.array(disc))
        self.next_state, self.mc = torch.tensor(np.array(ns)), torch.tensor(np.array(mc))
        self.successful = torch.nonzero(torch.tensor(succ)).flatten()  # transitions of successful episodes
        self.text = torch.zeros(1, TEXT_DIM)

    def __len__(self):
        return len(self.actions)

    def sample(self, batch_size: int, generator: torch.Generator, success_fraction: float = 0.0) -> TransitionBatch:
        from_successes = int(round(success_fraction * batch_size)) if len(self.successful) else 0
        i = torch.randint(0, len(self), (batch_size - from_successes,), generator=generator)
        if from_successes:
            pick = torch.randint(0, len(self.successful), (from_successes,), generator=generator)
            i = torch.cat([self.successful[pick], i])
        text = self.text.expand(batch_size, -1)
        return TransitionBatch(Observation(text, state=self.state[i]), self.actions[i], self.reward_sum[i],
                               self.discount[i], Observation(text, state=self.next_state[i]), self.mc[i])


def train(loss_cfg, steps: int = 1500, seed: int = 0, algo: str = "qt", num_episodes: int = 600,
          expert_fraction: float = 0.2, batch_size: int = 128, lr: float = 1e-3, train_cfg=None, **model_overrides):
    """Train on freshly collected toy data; returns (acting model, transitions, episodes).

    Without train_cfg: the toy's own fast settings (uniform batches, lr 1e-3, tau 0.02, acting with
    the online weights). With train_cfg (e.g. the shipped TrainConfig()): its batch size, learning rate,
    sampler share of successes, target rate and acting weights, as `qt-train` would train."""
    from .algorithms import model_requirements
    from .config import TrainConfig
    from .learner import Learner
    from .model import QTransformer

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    episodes = collect(num_episodes, expert_fraction, rng)
    data = ToyTransitions(episodes, loss_cfg.gamma, loss_cfg.n_step)
    if train_cfg is None:
        train_cfg = TrainConfig(algo=algo, lr=lr, target_tau=0.02, weight_decay=0.0, batch_size=batch_size,
                                success_batch_fraction=0.0, act_with="online")
    model = QTransformer(model_config(**{**model_overrides, **model_requirements(train_cfg.algo, loss_cfg)}))
    learner = Learner(model, loss_cfg, train_cfg)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        learner.update(data.sample(train_cfg.batch_size, g, train_cfg.success_batch_fraction))
    acting = learner.target if train_cfg.act_with == "averaged" else model
    return acting.eval(), data, episodes


@torch.no_grad()
def greedy_table(model) -> tuple[np.ndarray, np.ndarray]:
    """Greedy decoded bins (pos, t, 2) and their Q (pos, t) at every non-terminal state."""
    from .decoding import greedy_decode

    pts = [(p, t) for p in range(GOAL) for t in range(HORIZON)]
    state = torch.tensor(np.array([state_vector(p, t) for p, t in pts]))
    out = greedy_decode(model, text=torch.zeros(len(pts), TEXT_DIM), state=state)
    bins = out.bins.numpy().reshape(GOAL, HORIZON, 2)
    return bins, out.q_value.numpy().reshape(GOAL, HORIZON)


def optimal_chain(q_star: np.ndarray) -> np.ndarray:
    """Per-dimension greedy of Q*: a1 = argmax_a1 max_a2 Q*, then a2 = argmax_a2 Q*(a1, .). (pos, t, 2)."""
    a1 = q_star.max(axis=-1).argmax(axis=-1)
    a2 = np.take_along_axis(q_star, a1[..., None, None], axis=-2)[..., 0, :].argmax(axis=-1)
    return np.stack([a1, a2], axis=-1)


def has_unique_optimum(q_star: np.ndarray, margin: float = 1e-6) -> np.ndarray:
    """States where the best joint action beats every other by a margin (else any argmax is optimal)."""
    flat = np.sort(q_star.reshape(*q_star.shape[:2], -1), axis=-1)
    return flat[..., -1] - flat[..., -2] > margin


def covered_states(episodes: list[ToyEpisode], q_star: np.ndarray) -> np.ndarray:
    """States the data visits, where the optimum is unique and worth something: where to check a policy."""
    visited = np.zeros((GOAL, HORIZON), dtype=bool)
    for ep in episodes:
        for t, p in enumerate(ep.positions):
            visited[p, t] = True
    return visited & has_unique_optimum(q_star) & (q_star.max(axis=(-1, -2)) > 0)
