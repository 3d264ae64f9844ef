"""Success rates with 95% Wilson intervals, per task and overall."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sane at 0 and n, unlike the normal one); (0, 1)
    for no episodes."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


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
