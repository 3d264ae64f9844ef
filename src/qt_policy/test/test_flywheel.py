"""The flywheel (deploy -> record -> retrain): recorded episodes are what happened, a tiny loop runs end
to end, a crash loses no finished stage, and the ROS graph's bags feed the next round."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from qt_test_helpers.nodes import lane_domain_id

TINY = dict(tasks=["drawer-open"], seed_demos=1, rounds=1, episodes_per_round=2, eval_episodes=2, steps=2)


def _stage_lines(out: Path) -> list[str]:
    return [json.loads(line)["stage"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_policy_episodes_replay_to_their_labels():
    """Each recorded episode, its actions replayed on the same placement, ends as its label says, at its
    last step: the bag holds the actions as executed and the observations they were decided on."""
    from qt_policy.core.text import shared_encoder
    from qt_policy.evaluation.policy_episodes import collect_policy_episodes
    from qt_policy.evaluation.rollout import BatchPolicy
    from qt_policy.inference import load_policy
    from qt_policy.sim.arm import SimArm
    from qt_policy.sim.tasks import get_task

    task = get_task("drawer-close")
    policy = BatchPolicy(load_policy(["models/qt_metaworld"], "torch"), shared_encoder())
    arms = [SimArm() for _ in range(2)]
    try:
        episodes = collect_policy_episodes(arms, policy, task, [2000000, 2000001])
        assert any(e.success for e in episodes)  # the shipped model closes the drawer (validation seeds)
        for seed, episode in zip([2000000, 2000001], episodes):
            obs = arms[0].reset(task.name, seed)
            ends = []
            for t, action in enumerate(episode.actions):
                np.testing.assert_array_equal(obs.image, episode.images[t])
                np.testing.assert_allclose(obs.state, episode.states[t], rtol=0, atol=1e-6)
                obs, ok = arms[0].step(action)
                ends.append(ok)
            assert ends[-1] == episode.success and not any(ends[:-1])
            assert len(episode) == (len(ends) if episode.success else task.max_steps)
            assert episode.end_reason == ("success" if episode.success else "timeout")
    finally:
        for arm in arms:
            arm.close()


def _in_child(code: str, expect: int = 0) -> None:
    """Run flywheel work in a child process: simulated arms, models and torch settings stay out of the
    test process, whose ROS tests time a node's rate later (they slowed by a quarter after it)."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    run = subprocess.run([sys.executable, "-c", code], env=env, timeout=600, capture_output=True, text=True)
    assert run.returncode == expect, run.stdout[-3000:] + run.stderr[-3000:]


RUN = ("from pathlib import Path\nfrom qt_policy.flywheel import Flywheel, FlywheelConfig, loop\n"
       "cfg = FlywheelConfig(**{cfg!r})\n")


def test_a_tiny_flywheel_runs_end_to_end_and_resumes_without_redoing(tmp_path):
    from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
    from qt_policy.flywheel import flywheel_summary

    out = tmp_path / "fw"
    crash = ("real = loop.Flywheel._evaluate\n"
             "def crash_on_round_1(self, k, seed):\n"
             "    if k == 1:\n        raise RuntimeError('power cut')\n    return real(self, k, seed)\n"
             "loop.Flywheel._evaluate = crash_on_round_1\n")
    run = f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n"
    _in_child(RUN.format(cfg=TINY) + crash + run, expect=1)
    assert _stage_lines(out) == ["seed data", "round 0: train", "round 0: evaluate", "round 1: collect", "round 1: train"]
    trained = {p: p.stat().st_mtime_ns for p in out.glob("round_*/train/checkpoint/*")}

    _in_child(RUN.format(cfg=TINY) + run)
    summary = flywheel_summary(out)
    assert _stage_lines(out)[5:] == ["round 1: evaluate"]  # only what was missing
    assert {p: p.stat().st_mtime_ns for p in out.glob("round_*/train/checkpoint/*")} == trained

    # the data: the seed demonstration and the round's own episodes, ordinary bags with their labels
    bags = list_episode_bags(out / "bags")
    assert [b.name for b in bags] == ["r1-drawer-open-3010000", "r1-drawer-open-3010001", "seed-drawer-open-000000"]
    episodes = [read_episode_bag(b) for b in bags]
    assert episodes[2].success and episodes[2].task == "drawer-open"
    collected = json.loads((out / "round_1" / "collect.json").read_text())
    assert collected["successes"] == sum(e.success for e in episodes[:2]) and collected["episodes"] == 2
    assert [r["trained_on"]["episodes"] for r in summary["rounds"]] == [1, 3]  # round 1 learnt from its own episodes
    assert summary["rounds"][1]["trained_on"]["transitions"] == sum(len(e) for e in episodes)
    assert all(r["eval"]["episodes"] == 2 for r in summary["rounds"])

    # a rerun does nothing; other settings are refused, not mixed into the run
    _in_child(RUN.format(cfg=TINY) + run)
    assert len(_stage_lines(out)) == 6
    other = RUN.format(cfg={**TINY, "steps": 3}) + (
        "try:\n    " + run + "except ValueError as e:\n    raise SystemExit(3 if 'steps' in str(e) else 4)\n")
    _in_child(other, expect=3)


def test_two_processes_with_the_same_command_share_the_stages_and_do_each_once(tmp_path):
    """A second process takes the stages whose inputs are done and that nobody holds (the evaluation beside
    the next collection, the last round's seeds side by side); every stage is done once, no claim is left."""
    import subprocess
    import sys

    from qt_policy.flywheel import Flywheel, FlywheelConfig, flywheel_summary

    out, cfg = tmp_path / "shared", {**TINY, "final_seeds": 2}
    code = RUN.format(cfg=cfg) + (f"fw = Flywheel(Path({str(out)!r}), cfg, progress=False)\n"
                                  "fw.poll_s = 0.2\nfw.run()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    children = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for _ in range(2)]
    logs = [child.communicate(timeout=600)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    plan = [name for name, *_ in Flywheel(out, FlywheelConfig(**cfg)).stages()]
    assert sorted(_stage_lines(out)) == sorted(plan) and len(plan) == 8  # each stage once, none left out
    ran = [[name for name in plan if f"\n{name}: " in "\n" + log] for log in logs]
    assert all(ran) and sorted(ran[0] + ran[1]) == sorted(plan)  # both worked; no stage twice
    assert not list(out.rglob("*.claim"))
    assert [f["seed"] for f in flywheel_summary(out)["final_seeds"]] == [0, 1]


def test_filtered_bc_trains_on_the_successes_only(tmp_path):
    from qt_policy.flywheel import flywheel_summary

    out = tmp_path / "bc"
    _in_child(RUN.format(cfg={**TINY, "method": "bc_success"}) + f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n")
    summary = flywheel_summary(out)
    collected = summary["rounds"][1]["collected"]
    assert summary["rounds"][1]["trained_on"]["episodes"] == 1 + collected["successes"]
    assert summary["rounds"][1]["trained_on"]["successes"] == 1 + collected["successes"]
    config = json.loads((out / "round_1" / "train" / "checkpoint" / "config.json").read_text())
    assert config["train"]["algo"] == "bc" and config["data"]["success_only"] is True


def test_with_takeovers_the_round_records_the_persons_steps_and_hg_dagger_trains_on_them(tmp_path):
    from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
    from qt_policy.flywheel import flywheel_summary

    out = tmp_path / "hg"
    cfg = {**TINY, "method": "hg_dagger", "takeover_after": 10}
    _in_child(RUN.format(cfg=cfg) + f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n")
    collected = json.loads((out / "round_1" / "collect.json").read_text())
    episodes = [read_episode_bag(b) for b in list_episode_bags(out / "bags") if b.name.startswith("r1-")]
    person = sum(int(e.interventions.sum()) for e in episodes)
    assert person > 0 and collected["operator_share"] == pytest.approx(person / sum(len(e) for e in episodes))
    assert all(not e.interventions[:10].any() for e in episodes)  # the policy drove the first 10 steps
    config = json.loads((out / "round_1" / "train" / "checkpoint" / "config.json").read_text())
    assert config["train"]["failure_steps"] == "interventions" and config["train"]["algo"] == "bc"
    successes = sum(len(e) for e in episodes if e.success)  # successes whole, failures only the person's steps
    failures = sum(int(e.interventions.sum()) for e in episodes if not e.success)
    seed = flywheel_summary(out)["rounds"][0]["trained_on"]["transitions"]
    assert flywheel_summary(out)["rounds"][1]["trained_on"]["transitions"] == seed + successes + failures
    summary = flywheel_summary(out)  # the report names the arm and counts the person's share of every collected step
    assert summary["label"] == "hg_dagger + person after 10 steps"
    assert summary["person_share"] == pytest.approx(person / sum(len(e) for e in episodes))


def test_a_step_budget_bounds_every_collected_and_evaluated_episode_and_the_report_gives_success_at_k(tmp_path):
    """max_steps (issue 37's longer episodes) reaches the collection and the evaluation; success_within adds
    success@K to the report, counted from the evaluation's per-episode lengths."""
    from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
    from qt_policy.flywheel import flywheel_summary
    from qt_policy.flywheel.report import plot_rounds

    out = tmp_path / "budget"
    cfg = {**TINY, "max_steps": 20, "success_within": 12, "buffer_mb": 64.0}
    _in_child(RUN.format(cfg=cfg) + f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n")
    for k in (0, 1):  # every round's sampler got the memory asked for (the default is TrainConfig's, 1,536)
        config = json.loads((out / f"round_{k}" / "train" / "checkpoint" / "config.json").read_text())
        assert config["train"]["buffer_mb"] == 64.0
    collected = [read_episode_bag(b) for b in list_episode_bags(out / "bags") if b.name.startswith("r1-")]
    assert collected and all(len(e) == 20 for e in collected if not e.success)  # 150 without the budget
    assert all(len(e) <= 20 for e in collected)
    summary = flywheel_summary(out)
    for k, row in enumerate(summary["rounds"]):
        ev = json.loads((out / f"round_{k}" / "eval.json").read_text())
        lengths = [n for t in ev["tasks"].values() for n in t["lengths"]]
        ok = [x for t in ev["tasks"].values() for x in t["per_episode"]]
        assert all(n == 20 for n, y in zip(lengths, ok) if not y) and ev["max_steps"] == 20
        assert row["eval"]["success_at_k"] == sum(y and n <= 12 for n, y in zip(lengths, ok)) / len(ok)
        won = [n for n, y in zip(lengths, ok) if y]  # how fast the successes were, when there were any
        assert row["eval"].get("median_steps") == (float(np.median(won)) if won else None)
    plot_rounds([summary], tmp_path / "rounds.png")  # a second panel for success@K
    assert (tmp_path / "rounds.png").stat().st_size > 0


def test_the_cli_and_the_report(tmp_path):
    from qt_policy.research import flywheel_report

    out = tmp_path / "cli"
    args = ["--out", str(out), "--tasks", "drawer-open", "--seed-demos", "1", "--rounds", "0", "--eval-episodes", "1",
            "--steps", "1", "--final-seeds", "2", "--no-progress"]
    cli = "import sys\nfrom qt_policy.tools import flywheel\nsys.exit(flywheel.main({!r}))\n"
    _in_child(cli.format(args))
    _in_child(cli.format([*args[:-1], "--method", "dagger"]), expect=2)  # a clear error, not a traceback
    assert flywheel_report.main([str(out), "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "results.md").read_text()
    assert "| qt |" in table and (tmp_path / "report" / "rounds.png").stat().st_size > 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())[0]
    assert [f["seed"] for f in summary["final_seeds"]] == [0, 1]


def test_a_round_collected_through_the_ros_graph_trains_the_next(tmp_path, monkeypatch):
    """--collect ros: the sim arm, the policy node and the recorder as processes record the round; the
    recorder's bags (named by the recorder, labelled by its EpisodeResult) are the next round's data."""
    from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
    from qt_policy.flywheel import flywheel_summary

    monkeypatch.setenv("ROS_DOMAIN_ID", str(lane_domain_id(4)))  # a graph of its own
    out = tmp_path / "ros"
    cfg = {**TINY, "tasks": ["drawer-close"], "collect": "ros", "episodes_per_round": 1, "eval_episodes": 1}
    _in_child(RUN.format(cfg=cfg) + f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n")
    summary = flywheel_summary(out)
    recorded = [b for b in list_episode_bags(out / "bags") if b.name.startswith("r1-")]
    assert len(recorded) == 1 and (out / "round_1" / "ros" / "bags").is_dir()
    episode = read_episode_bag(recorded[0])
    assert episode.instruction == "close the drawer" and len(episode) > 0
    assert summary["rounds"][1]["collected"]["tasks"]["drawer-close"]["successes"] == int(episode.success)
    assert summary["rounds"][1]["trained_on"]["episodes"] == 2


def test_a_round_through_the_ros_graph_with_a_person_checks_the_bags_flags(tmp_path, monkeypatch):
    """--collect ros --takeover-after: the scripted person's node takes over the untrained policy's episode
    through the policy node's operator topics; the round's collect.json says the recorder's flags agree with
    what the person drove, and counts the person's steps."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(lane_domain_id(3)))
    out = tmp_path / "ros"
    cfg = {**TINY, "tasks": ["drawer-close"], "collect": "ros", "episodes_per_round": 1, "eval_episodes": 1,
           "takeover_after": 10}
    _in_child(RUN.format(cfg=cfg) + f"Flywheel(Path({str(out)!r}), cfg, progress=False).run()\n")
    collected = json.loads((out / "round_1" / "collect.json").read_text())
    check = collected["flags_check"]
    assert check["episodes"] == check["person_lines"] == check["takeovers"] == check["agree"] == 1
    assert check["all_agree"] and 0 < collected["operator_share"] < 1
