"""Success rates with 95% Wilson intervals, per task and overall."""
from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(results: dict) -> dict:
    """Per-task and overall success with 95% Wilson intervals, from per-episode successes/lengths."""
    for r in results["tasks"].values():
        k, n = r["successes"], r["episodes"]
        lo, hi = wilson_interval(k, n)
        r.update(success_rate=k / n if n else 0.0, ci95=[lo, hi])
    total = sum(r["successes"] for r in results["tasks"].values())
    n = sum(r["episodes"] for r in results["tasks"].values())
    lo, hi = wilson_interval(total, n)
    results["mean_success"] = float(np.mean([r["success_rate"] for r in results["tasks"].values()]))
    results["overall"] = {"successes": total, "episodes": n, "ci95": [lo, hi]}
    return results
