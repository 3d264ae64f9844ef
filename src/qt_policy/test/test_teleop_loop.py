"""Teleoperate -> record -> train -> deploy on the simulated arm, through a real arm's interfaces.

Separate processes, as on a robot: the sim arm takes TwistStamped + gripper Float64 (action_input
commands, as behind MoveIt Servo); a scripted teleoperator drives it; the recorder (action_source
teleop) makes one action per control step from those commands. The recorded bags equal what the
bag import makes of the same messages, train as they are (the checkpoint carries the embodiment),
and the trained policy then drives the same sim through TwistStamped, recorded again.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np

from qt_policy.data.bag_io import list_episode_bags, read_episode_bag
from qt_test_helpers.nodes import TINY_TRAIN, deploy_one_episode, run_teleoperation

REPO_ROOT = Path(__file__).resolve().parents[3]
EMBODIMENT = REPO_ROOT / "config" / "embodiments" / "metaworld_sawyer.yaml"
MAX_STEPS = 12






def test_teleoperate_record_train_deploy(tmp_path):
    from qt_policy.core.checkpoint import read_config
    from qt_policy.robot.embodiment import load_embodiment
    from qt_policy.tools.import_bags import import_bag, topic_map

    teleop_bags, policy_bags = tmp_path / "teleop", tmp_path / "policy"
    sim = ("qt_policy.nodes.sim_arm_node", {"max_steps": MAX_STEPS, "seed": 0, "action_input": "commands"})
    # 1. teleoperated demonstrations
    procs = run_teleoperation(tmp_path, {
        "sim_arm": sim,
        "recorder": ("qt_policy.nodes.recorder_node", {"output_dir": str(teleop_bags), "action_source": "teleop",
                                                      "min_free_disk_mb": 10}),
        "teleop": ("qt_policy.nodes.scripted_teleop_node", {"tasks": "[drawer-open]", "episodes_per_task": 2,
                                                           "expert_fraction": 1.0, "seed": 0, "pause_s": 0.5,
                                                           "wait_for": "[sim_arm, qt_recorder]"}),
    }, 90.0, teleop_bags, 2)
    teleop_log = procs["teleop"][1].read_text()
    assert "success=False" in teleop_log and "as expert" in teleop_log  # 12 steps: the expert is not done yet

    emb = load_embodiment(EMBODIMENT)
    topics = {"camera": "/camera/image_raw", "state": "/robot_state", "twist": "/command/twist",
              "gripper": "/command/gripper"}
    for bag in list_episode_bags(teleop_bags):
        ep = read_episode_bag(bag)
        assert ep.instruction == "open the drawer" and ep.success is False and ep.embodiment["name"] == emb.name
        # one step per applied sim step (+-1: the sim's first tick may fall before the first command's frame)
        assert abs(len(ep) - MAX_STEPS) <= 1, len(ep)
        assert np.abs(ep.actions[:, :3]).max() > 0.05 and ep.states.shape == (len(ep), 4)
        assert np.ptp(ep.states[:, :3], axis=0).max() > 0.005  # the hand moved under the teleoperator's twists
        # the live recording is what the bag import makes of the same messages (one alignment rule)
        again = read_episode_bag(import_bag(bag, emb, tmp_path / "reimported", topic_map(emb, overrides=topics),
                                            ep.instruction, ep.success).bag_path)
        # (the import also takes a frame stamped before the instruction but received after it: live, the
        # recorder drops such frames by their stamp; so the import may start one step earlier)
        skip = len(again) - len(ep)
        assert skip in (0, 1), (len(again), len(ep))
        np.testing.assert_allclose(again.actions[skip:skip + len(ep) - 1], ep.actions[:-1], atol=1e-6)

    # 2. train on the teleoperated bags only
    out = tmp_path / "run"
    rc = subprocess.run([sys.executable, "-m", "qt_policy.tools.train", "--data", str(teleop_bags), "--out", str(out),
                         *TINY_TRAIN], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stdout[-2000:] + rc.stderr[-3000:]
    assert read_config(out / "checkpoint")["embodiment"]["name"] == emb.name

    # 3. the trained policy drives the sim through TwistStamped + gripper; the recorder records it
    procs, results, twists = deploy_one_episode(tmp_path, {
        "sim_arm": sim,
        "policy": ("qt_policy.nodes.policy_node", {"checkpoint": str(out / "checkpoint")}),
        "recorder": ("qt_policy.nodes.recorder_node", {"output_dir": str(policy_bags), "min_free_disk_mb": 10}),
    }, "open the drawer", startup_s=60.0, episode_s=40.0)
    (result,) = results
    assert (result.success, result.end_reason) == (False, "success_topic"), result
    assert f"after {MAX_STEPS} steps" in procs["sim_arm"][1].read_text()  # the sim stepped on the policy's twists
    assert any(abs(t.twist.linear.x) + abs(t.twist.linear.y) + abs(t.twist.linear.z) > 0 for t in twists)
    ep = read_episode_bag(result.bag_path)
    assert len(ep) >= MAX_STEPS - 1 and np.ptp(ep.states[:, :3], axis=0).max() > 0.001
