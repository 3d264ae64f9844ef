"""Which episodes a generated dataset holds: per task, the placement seed, the attempt and whether a
demonstration or a failure maker acts (qt-generate's plan; research tools read it back to find the
demonstrations of a dataset)."""
from __future__ import annotations

import zlib

import numpy as np

from .collect import sample_mode


def _mode(task: str, seed: int, expert_fraction: float) -> str:
    return sample_mode(np.random.default_rng([seed, zlib.crc32(task.encode()), 7]), expert_fraction)


def episode_plan(task: str, episodes: int, expert_fraction: float, attempts: int) -> list[tuple[int, int | None, str]]:
    """(placement seed, attempt or None, mode) of every episode of one task.

    One attempt per placement: seed = episode index, mode drawn with P(expert) = expert_fraction.
    K attempts: episode e is attempt e % K at placement e // K; the first round(K x fraction)
    attempts of each placement are expert ones, the rest failure makers.
    """
    if attempts < 1:
        raise ValueError(f"attempts per placement must be >= 1, got {attempts}")
    if attempts == 1:
        return [(s, None, _mode(task, s, expert_fraction)) for s in range(episodes)]
    experts = round(attempts * expert_fraction)
    if (experts == 0 and expert_fraction > 0) or (experts == attempts and expert_fraction < 1):
        raise ValueError(f"--expert-fraction {expert_fraction} with {attempts} attempts per placement gives "
                         f"{experts} expert attempts per placement; choose a fraction and K with 0 < K x fraction < K")
    return [(e // attempts, e % attempts, "expert" if e % attempts < experts else "noisy") for e in range(episodes)]
