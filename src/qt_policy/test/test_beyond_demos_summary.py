"""Issue 37's summary from qt-algorithms' per-seed rows: the means, the pooled median, the paired ratio, the targets."""
from qt_policy.research.beyond_demos_summary import paired_ratios, summarize


def row(success, at_k, lengths, per_episode):
    return {"mean_success": success, "success_at_k": at_k, "median_steps": None, "lengths": lengths,
            "per_episode": per_episode}


def per_seed(methods):
    return {"seed_start": 1_000_000, "episodes_per_task": 2, "commands": ["qt-algorithms ..."],
            "methods": {name: {"algo": "x", "sampler": "s", "steps": 3000, "seeds": seeds} for name, seeds in methods.items()}}


DEMO = {"a": [200, None]}  # the demonstrator solved placement 0 in 200 steps, failed placement 1


def test_paired_ratio_uses_only_placements_both_solved():
    assert paired_ratios(row(1, 1, {"a": [100, 50]}, {"a": [True, True]}), DEMO) == [0.5]
    assert paired_ratios(row(0, 0, {"a": [400, 50]}, {"a": [False, True]}), DEMO) == []


def test_means_over_seeds_pooled_median_and_targets():
    data = per_seed({
        "qt": {"0": row(1.0, 1.0, {"a": [60, 80]}, {"a": [True, True]}),
               "1": row(0.5, 0.5, {"a": [100, 400]}, {"a": [True, False]})},
        "bc_success": {"0": row(1.0, 0.0, {"a": [200, 220]}, {"a": [True, True]})},
        "bc_all_qt_sampler": {"0": row(0.5, 0.5, {"a": [90, 400]}, {"a": [True, False]})}})
    s = summarize(data, 128, DEMO)
    q = s["methods"]["qt"]
    assert q["success"] == 0.75 and q["success_at_k"] == 0.75 and q["seeds"] == 2
    assert q["median_steps"] == 80  # successes 60, 80, 100 pooled over both seeds
    assert q["length_ratio_vs_demonstrator"] == 0.4  # 60/200 and 100/200: median 0.4
    assert [p["seed"] for p in q["per_seed"]] == [0, 1]
    t = s["targets"]
    assert t["success@K >= filtered BC + 20 points"] and t["success >= filtered BC - 5 points"] is False
    assert t["median steps <= 0.75x filtered BC's"]  # 80 <= 0.75 * 210
    assert t["success@K >= BC on all data + 20 points"]  # 0.75 >= 0.5 + 0.2
    assert s["k"] == 128 and s["complete"] is False  # two seeds and one, not the protocol's three
    full = per_seed({name: {str(i): row(1.0, 1.0, {"a": [60, 80]}, {"a": [True, True]}) for i in range(3)}
                     for name in ("qt", "bc_success")})
    assert summarize(full, 128, DEMO)["complete"] is True
