"""A person in the loop through the ROS graph: the sim arm, the policy node, the recorder and a scripted
person (launch/sim_takeover.launch.xml) as processes; the person takes over through the policy node's
operator topics, and the recorded bag's intervention flags are what the person did."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
from qt_policy.evaluation.takeover_flags import check_takeover_record, flags_agree
from qt_test_helpers.models import tiny_checkpoint
from qt_test_helpers.nodes import lane_domain_id

PATIENCE = 10


def test_the_bag_flags_the_steps_the_person_drove(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt")  # random weights: the policy alone does not close the drawer
    out, record = tmp_path / "ros", tmp_path / "person.jsonl"
    code = ("from pathlib import Path\nfrom qt_policy.evaluation.through_ros import evaluate_through_ros\n"
            f"evaluate_through_ros(Path({str(ckpt)!r}), ['drawer-close'], 1, 3000000, Path({str(out)!r}), "
            f"takeover_after={PATIENCE}, person_record={str(record)!r})\n")
    env = {**os.environ, "ROS_DOMAIN_ID": str(lane_domain_id(2)),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    run = subprocess.run([sys.executable, "-c", code], env=env, timeout=600, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + (out / "nodes.log").read_text()[-3000:]
    (bag,) = list_episode_bags(out / "bags")
    episode = read_episode_bag(bag)
    (person,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert person["task"] == "drawer-close" and person["took_over_at"] == PATIENCE and person["commands"] > 0
    flags = episode.interventions
    first = int(np.argmax(flags))
    assert flags.any() and not flags[:first].any() and flags[first:].all(), flags.astype(int).tolist()
    # the mux hands over within a tick: the person's first command arrives with frame PATIENCE or just after it
    assert PATIENCE <= first <= PATIENCE + 2, first
    assert abs(int(flags.sum()) - person["commands"]) <= 2, (int(flags.sum()), person["commands"])
    assert episode.success and person.get("success") is True  # the person closed the drawer
    assert check_takeover_record(out / "bags", record)["all_agree"]


def test_flags_agree_only_with_what_the_person_did():
    person = {"took_over_at": 3, "commands": 5}
    assert flags_agree([0, 0, 0, 1, 1, 1, 1, 1], person)
    assert flags_agree([0, 0, 0, 0, 1, 1, 1, 1], person)  # a tick late, a command short: within the slack
    assert not flags_agree([0, 1, 0, 1, 1, 1, 1, 1], person)  # a flag before the person took over
    assert not flags_agree([0, 0, 0, 1, 1, 0, 1, 1], person)  # a gap: the policy drove in between
    assert not flags_agree([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], person)  # 9 flags for 5 commands
    assert not flags_agree([0, 0, 0, 0, 0, 0, 1, 1], person)  # 3 ticks late
    assert flags_agree([0, 0, 0], {"took_over_at": None, "commands": 0})
    # the episode ended at the tick the person took over: its one command came after the last step
    assert flags_agree([0, 0, 0, 0], {"took_over_at": 3, "commands": 1})
    assert not flags_agree([0, 0, 0, 0, 0, 0, 0, 0], {"took_over_at": 3, "commands": 1})  # it should have driven
    assert not flags_agree([0, 0, 0, 0], {"took_over_at": 3, "commands": 5})
    assert not flags_agree([0, 1, 0], {"took_over_at": None, "commands": 0})
