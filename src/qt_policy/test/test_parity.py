"""research.parity: the harness-vs-ROS comparison and its exact McNemar test."""
import json

import pytest

from qt_policy.research import parity
from qt_policy.evaluation import summarize


def run(per_task: dict[str, list[bool]], seed_start=1_000_000):
    res = {"checkpoint": "m", "seed_start": seed_start, "episodes_per_task": 4, "tasks": {}}
    for name, outcomes in per_task.items():
        res["tasks"][name] = {"successes": sum(outcomes), "episodes": len(outcomes), "mean_length": 1.0,
                              "seeds": [seed_start + k for k in range(len(outcomes))], "per_episode": outcomes}
    return summarize(res)


def test_mcnemar_exact_values():
    assert parity.mcnemar_exact(0, 0) == 1.0
    assert parity.mcnemar_exact(0, 6) == pytest.approx(2 / 64)  # 2 * 0.5**6
    assert parity.mcnemar_exact(3, 3) == 1.0
    assert parity.mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


def test_compare_pairs_the_same_seeds_and_judges_the_target(tmp_path):
    h = run({"a": [True] * 10 + [False] * 10, "b": [True] * 20})
    r = run({"a": [True] * 9 + [False] * 10 + [True], "b": [True] * 20})
    c = parity.compare(h, r)
    a = c["tasks"]["a"]
    assert (a["harness_only_successes"], a["ros_only_successes"]) == (1, 1) and a["difference_points"] == 0.0
    assert c["target"]["met"] and c["mean"]["difference_points"] == 0.0
    worse = parity.compare(h, run({"a": [False] * 20, "b": [True] * 20}))
    assert not worse["target"]["met"] and worse["tasks"]["a"]["ros_below_harness_interval"]
    assert worse["mean"]["difference_points"] == pytest.approx(-25.0)
    with pytest.raises(ValueError, match="different seeds"):
        parity.compare(h, run({"a": [True] * 20}, seed_start=5))
    (tmp_path / "h.json").write_text(json.dumps(h))
    (tmp_path / "r.json").write_text(json.dumps(r))
    assert parity.main([str(tmp_path / "h.json"), str(tmp_path / "r.json"), "--out", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["target"]["met"]
    assert "**met**" in (tmp_path / "p.table.md").read_text()


def test_wilson_interval_values():
    from qt_policy.evaluation.stats import wilson_interval

    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))  # closed form at 0 successes
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(1 - hi) and lo == pytest.approx(0.2366, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_success_within_k_counts_only_episodes_that_succeeded_in_time():
    from qt_policy.evaluation.stats import success_within

    results = {"tasks": {"a": {"per_episode": [True, True, False, True], "lengths": [50, 120, 400, 90]},
                         "b": {"per_episode": [True, False], "lengths": [100, 30]}}}
    at = success_within(results, 100)
    assert (at["tasks"]["a"]["successes"], at["tasks"]["b"]["successes"]) == (2, 1)  # 120 is too late; 30 failed
    assert at["mean"] == pytest.approx((0.5 + 0.5) / 2) and at["overall"]["successes"] == 3
    assert results["success_at_k"]["k"] == 100
    with pytest.raises(ValueError, match="lengths"):
        success_within({"tasks": {"c": {"per_episode": [True]}}}, 10)
