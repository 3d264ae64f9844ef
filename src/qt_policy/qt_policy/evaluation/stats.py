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


def success_within(results: dict, k: int) -> dict:
    """success@K (issue 37): per task and overall, the share of episodes that succeeded within `k` steps
    (needs the per-episode `lengths` both evaluations write), with Wilson intervals; stored under
    results["success_at_k"] and returned."""
    per_task = {}
    for name, r in results["tasks"].items():
        if "lengths" not in r:
            raise ValueError(f"task {name!r} has no per-episode lengths (evaluations write them)")
        hits = sum(bool(ok) and n <= k for ok, n in zip(r["per_episode"], r["lengths"]))
        per_task[name] = {"successes": hits, "episodes": len(r["lengths"]),
                          "rate": hits / len(r["lengths"]) if r["lengths"] else 0.0,
                          "ci95": list(wilson_interval(hits, len(r["lengths"])))}
    total, n = sum(t["successes"] for t in per_task.values()), sum(t["episodes"] for t in per_task.values())
    results["success_at_k"] = {"k": int(k), "tasks": per_task,
                               "mean": float(np.mean([t["rate"] for t in per_task.values()])) if per_task else 0.0,
                               "overall": {"successes": total, "episodes": n, "ci95": list(wilson_interval(total, n))}}
    return results["success_at_k"]
