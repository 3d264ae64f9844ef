"""Dataset generator: the episode plan (placements, attempts, modes) and its settings record."""
import json

import pytest

from qt_policy.sim.episode_plan import episode_plan
from qt_policy.tools.generate import bag_name, check_settings


def test_one_attempt_per_placement_keeps_the_seed_per_episode_plan():
    plan = episode_plan("drawer-open", 400, 0.2, 1)
    assert [s for s, _, _ in plan] == list(range(400)) and all(a is None for _, a, _ in plan)
    experts = sum(m == "expert" for _, _, m in plan) / 400
    assert 0.14 < experts < 0.26  # drawn per episode with P = 0.2
    assert plan == episode_plan("drawer-open", 400, 0.2, 1)  # reproducible
    assert bag_name("drawer-open", 7) == "drawer-open-000007"


def test_attempts_put_a_fixed_number_of_experts_at_every_placement():
    plan = episode_plan("window-open", 100, 0.2, 5)
    by_placement = {}
    for seed, attempt, mode in plan:
        by_placement.setdefault(seed, []).append((attempt, mode))
    assert sorted(by_placement) == list(range(20))
    for seed, attempts in by_placement.items():
        assert [a for a, _ in attempts] == [0, 1, 2, 3, 4]
        assert [m for _, m in attempts] == ["expert"] + ["noisy"] * 4
    assert episode_plan("window-open", 12, 0.4, 5)[:5] == [(0, 0, "expert"), (0, 1, "expert"), (0, 2, "noisy"),
                                                          (0, 3, "noisy"), (0, 4, "noisy")]
    assert bag_name("window-open", 3, 0) == "window-open-000003-a0"


@pytest.mark.parametrize("fraction, attempts", [(0.05, 5), (0.95, 5), (0.2, 0)])
def test_impossible_mixes_are_refused(fraction, attempts):
    with pytest.raises(ValueError):
        episode_plan("drawer-open", 10, fraction, attempts)


def test_settings_record_refuses_a_resume_with_other_settings(tmp_path):
    a = {"expert_fraction": 0.2, "attempts_per_placement": 5, "image_size": 64}
    check_settings(tmp_path, a, has_bags=False)
    assert json.loads((tmp_path / "generation.json").read_text()) == a
    check_settings(tmp_path, a, has_bags=True)  # same settings: resume
    with pytest.raises(SystemExit, match="Use another --out"):
        check_settings(tmp_path, {**a, "attempts_per_placement": 3}, has_bags=True)
    old = tmp_path / "old"
    old.mkdir()
    with pytest.raises(SystemExit, match="one attempt per placement"):  # bags from before the record
        check_settings(old, a, has_bags=True)
    check_settings(old, {**a, "attempts_per_placement": 1}, has_bags=True)


def test_a_second_run_skips_the_bags_already_written(tmp_path, capsys):
    """Resume must find the bags the workers wrote (it once looked for other names and regenerated all)."""
    from qt_policy.data.bag_io import list_episode_bags
    from qt_policy.tools.generate import main

    args = ["--out", str(tmp_path), "--tasks", "drawer-open", "--episodes-per-task", "1", "--workers", "1", "--no-progress"]
    assert main(args) == 0
    written = sorted(b.name for b in list_episode_bags(tmp_path))
    assert written == ["drawer-open-000000-a0"]
    capsys.readouterr()
    assert main(args) == 0
    assert "1 episodes present, 0 to generate" in capsys.readouterr().out
    assert sorted(b.name for b in list_episode_bags(tmp_path)) == written


def test_the_benchmark_mix_of_demonstrator_failure_maker_and_budget(tmp_path):
    """issue 37's data: slow demonstrations, interrupted experts, a longer budget; recorded in
    generation.json (a resume with other settings is refused), default folders untouched."""
    from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
    from qt_policy.tools.generate import main

    args = ["--out", str(tmp_path), "--tasks", "drawer-open", "--episodes-per-task", "4", "--expert-fraction", "0.5",
            "--workers", "1", "--no-progress", "--demo-kind", "slow_expert", "--failure-kind", "interrupted_expert",
            "--max-steps", "30"]
    assert main(args) == 0
    episodes = [read_episode_bag(b) for b in list_episode_bags(tmp_path)]
    kinds = {e.episode_id.rsplit("-", 1)[-1] for e in episodes}
    assert kinds <= {"slow_expert", "interrupted_expert"} and len(episodes) == 4
    assert all(len(e) <= 30 for e in episodes)
    record = json.loads((tmp_path / "generation.json").read_text())
    assert (record["demo_kind"], record["failure_kind"], record["max_steps"]) == ("slow_expert", "interrupted_expert", 30)
    with pytest.raises(SystemExit, match="was generated with"):
        main(args[:-2] + ["--max-steps", "40"])
