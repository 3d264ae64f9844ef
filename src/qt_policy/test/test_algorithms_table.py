"""qt-algorithms' bookkeeping: the rows it merges, the statistics it reports, the claims two processes share."""
import json
import os
import subprocess
import sys

import pytest

from qt_policy.training.claims import claim, release
from qt_policy.research.algorithms import (METHODS, TABLE, merge_seed, pooled_interval, run_settings,
                                           sampler_name, write_table)


def _row(rate, successes, algo="qt", sampler="all, 0.9 from successes"):
    return {"algo": algo, "preset": "recommended", "sampler": sampler, "steps": 3000, "settings": {"steps": 3000},
            "mean_success": rate, "overall": {"successes": successes, "episodes": 350},
            "tasks": {"drawer-open": rate, "window-open": rate}}


def test_merged_seeds_give_the_mean_the_spread_and_a_pooled_interval(tmp_path):
    f = tmp_path / "summary.json"
    header = {"data": "data/bags", "split": "evaluation", "seed_start": 1_000_000, "episodes_per_task": 50, "commands": []}
    merge_seed(f, "qt", 0, _row(0.80, 280), header, "qt-algorithms --seeds 0")
    merge_seed(f, "qt", 2, _row(0.90, 315), header, "qt-algorithms --seeds 2")
    results = merge_seed(f, "qt", 1, _row(0.85, 298), header, "qt-algorithms --seeds 0")
    entry = results["methods"]["qt"]
    assert entry["success_per_seed"] == [0.80, 0.85, 0.90]  # in seed order, whatever order they finished in
    assert entry["mean"] == pytest.approx(0.85)
    assert entry["std"] == pytest.approx(0.05)  # sample std of 0.80, 0.85, 0.90
    assert (entry["min"], entry["max"]) == (0.80, 0.90)
    assert results["commands"] == ["qt-algorithms --seeds 0", "qt-algorithms --seeds 2"]
    lo, hi = pooled_interval(entry)
    assert lo < (280 + 298 + 315) / 1050 < hi
    assert json.loads(f.read_text()) == results
    write_table(results, tmp_path / "summary.md")
    table = (tmp_path / "summary.md").read_text()
    assert "| qt | qt | recommended | all, 0.9 from successes | 3000 | 0, 1, 2 | 85.0% | 5.0% | 80.0%, 85.0%, 90.0% |" in table


def test_every_row_names_its_sampler():
    assert sampler_name({"success_batch_fraction": 0.0}, False) == "all, uniform"
    assert sampler_name({"success_batch_fraction": 0.9}, False) == "all, 0.9 from successes"
    assert sampler_name({"success_batch_fraction": 0.9}, True) == "successes only, uniform"


def test_the_table_sets_each_method_as_the_issue_names_it():
    assert run_settings("bc_all_uniform", 3000) == ("recommended", {"algo": "bc", "success_batch_fraction": 0.0, "steps": 3000}, False)
    assert run_settings("bc_all_qt_sampler", 3000) == ("recommended", {"algo": "bc", "steps": 3000}, False)
    assert run_settings("bc_success", 100)[2] is True
    assert run_settings("qt_paper", 3000)[0] == "paper"
    assert run_settings("cql", 3000)[1]["use_mc_lower_bound"] is False
    assert set(TABLE) <= set(METHODS)


def test_a_claim_is_exclusive_while_its_process_lives(tmp_path):
    path = tmp_path / "qt_s0.claim"
    assert claim(path)
    other = subprocess.run([sys.executable, "-c", "import sys; from qt_policy.training.claims import claim; "
                            f"sys.exit(0 if claim(__import__('pathlib').Path({str(path)!r})) else 3)"])
    assert other.returncode == 3  # this process holds it
    path.write_text("999999999")  # a claim left by a process that is gone
    assert claim(path) and path.read_text() == str(os.getpid())
    release(path)
    assert not path.exists()
    path.write_text("1")  # another live process's claim (pid 1): release leaves it
    release(path)
    assert path.read_text() == "1"


def test_speed_of_a_result_counts_successes_within_k_and_their_median_steps():
    from qt_policy.evaluation.stats import success_within
    from qt_policy.research.algorithms import speed_of

    res = {"max_steps": 400, "tasks": {
        "a": {"lengths": [100, 150, 400, 90], "per_episode": [True, True, False, True]},
        "b": {"lengths": [200, 120], "per_episode": [True, False]}}}
    speed = speed_of(res, 130, success_within)
    # a: 100 and 90 succeed within 130 (2 of 4); b: none of 2 -> the mean over tasks is 0.25
    assert speed["success_at_k"] == pytest.approx(0.25) and speed["k"] == 130
    assert speed["median_steps"] == 125.0  # successes 100, 150, 90, 200
    assert speed["lengths"]["b"] == [200, 120] and speed["max_steps"] == 400


def test_each_results_file_keeps_its_own_curves(tmp_path):
    """Two files of one split (the loop's budget check: budget_3000, budget_6000) keep their curves apart;
    the default files keep the committed layout (runs/evaluation, runs/validation)."""
    from qt_policy.research.algorithms import curves_folder

    assert curves_folder(tmp_path, "validation", None) == tmp_path / "runs" / "validation"
    assert curves_folder(tmp_path, "validation", "budget_3000") != curves_folder(tmp_path, "validation", "budget_6000")
    assert curves_folder(tmp_path, "validation", "budget_6000") == tmp_path / "runs" / "budget_6000"
