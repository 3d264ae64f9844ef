"""Per-episode return bookkeeping: Monte-Carlo return-to-go and n-step returns.

An episode with T steps has rewards r_0..r_{T-1} (sparse: 1 at the first success, else 0) and
ends after step T-1: nothing bootstraps past it.
"""
from __future__ import annotations

import numpy as np


def returns_to_go(rewards, gamma: float) -> np.ndarray:
    """MC_t = sum_{j>=t} gamma^(j-t) r_j for every step t of one episode."""
    rewards = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(rewards)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out.astype(np.float32)


def n_step_returns(rewards, gamma: float, n: int):
    """For every step t: (sum_{j<m} gamma^j r_{t+j}, discount, bootstrap index) with m = min(n, T - t).

    discount is gamma^n when the state t+n lies inside the episode (bootstrap from it), else 0:
    no bootstrap past the episode end. The bootstrap index is clamped inside the episode so it is
    always a valid frame, but it is multiplied by a zero discount whenever it is past the end.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rewards = np.asarray(rewards, dtype=np.float64)
    T = len(rewards)
    sums = np.zeros(T)
    discount = np.zeros(T)
    index = np.zeros(T, dtype=np.int64)
    for t in range(T):
        m = min(n, T - t)
        sums[t] = sum(gamma**j * rewards[t + j] for j in range(m))
        if t + n < T:
            discount[t] = gamma**n
            index[t] = t + n
        else:
            index[t] = T - 1
    return sums.astype(np.float32), discount.astype(np.float32), index
