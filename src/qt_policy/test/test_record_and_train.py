"""One data path: sim arm + policy + recorder as separate ROS 2 processes -> episode bags -> training.

The sim arm node (Meta-World), the policy node (a random-weight tiny checkpoint) and the recorder node
run as three processes, exactly as on a robot. This test publishes an instruction, ends the first
episode through the recorder's EndEpisode service (success=True), lets the second end at the sim's
max_steps (success=False, published on the success topic), stops the nodes (SIGINT) during a third
(finalized as 'shutdown'), then checks that each episode is one bag readable by rosbags
(read_episode_bag) and by the mcap reader, and trains 3 steps on those bags.
"""
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from qt_policy.data import bag_format as bf
from qt_policy.data.bag_io import find_partial_bags, list_episode_bags, read_episode_bag
from qt_policy.dev.topic_pub import publish_once
from qt_test_helpers.models import tiny_checkpoint
from qt_test_helpers.nodes import driver_node, TINY_TRAIN, logs, own_domain_id, start_node, stop_nodes
from qt_test_helpers.recording import doctor

REPO_ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_S = 60.0
EPISODE_TIMEOUT_S = 20.0
SIM_MAX_STEPS = 15
INSTRUCTIONS = ("open the drawer", "close the drawer", "open the drawer")  # the 3rd reuses the 1st env














def test_record_episodes_then_train(tmp_path):
    from std_msgs.msg import Bool

    from qt_msgs.msg import EpisodeResult, QAction
    from qt_msgs.srv import EndEpisode

    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    bags = tmp_path / "bags"
    procs = {}
    context, node, executor = driver_node("record_and_train_test")
    try:
        specs = {
            "sim_arm": ("qt_policy.nodes.sim_arm_node", {"max_steps": SIM_MAX_STEPS, "rate_hz": 10.0}),
            "policy": ("qt_policy.nodes.policy_node", {"checkpoint": str(ckpt), "dry_run": "true",
                                                       "control_rate_hz": 10.0}),
            "recorder": ("qt_policy.nodes.recorder_node", {"output_dir": str(bags), "episode_timeout_s": 15.0}),
        }
        for name, (module, params) in specs.items():
            log_path = tmp_path / f"{name}.log"
            procs[name] = (start_node(module, params, log_path), log_path)

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        sent = []  # as `ros2 topic pub --once`: a new volatile publisher per instruction, once all 3 nodes match

        def instruct(text):
            sent.append(publish_once(node, executor, "/instruction", text, min_subscriptions=3))
        results, actions, successes = [], [], []
        node.create_subscription(EpisodeResult, "/episode_result", results.append, reliable)
        node.create_subscription(QAction, "/qt/action", actions.append, reliable)
        node.create_subscription(Bool, "/success", successes.append, reliable)
        end_client = node.create_client(EndEpisode, "/qt_recorder/end_episode")

        def spin_until(cond, timeout, what):
            deadline = time.monotonic() + timeout
            while not cond() and time.monotonic() < deadline:
                for name, (proc, _) in procs.items():
                    assert proc.poll() is None, f"{name} exited with {proc.returncode} while waiting for {what}\n{logs(procs)}"
                names = [n for n, _ in node.get_node_names_and_namespaces()]
                twice = [n for n in ("sim_arm", "qt_policy", "qt_recorder") if names.count(n) > 1]
                assert not twice, (f"ROS_DOMAIN_ID={own_domain_id()} has a second {twice} (another test "
                                   "run?): rerun with another ROS_DOMAIN_ID")
                executor.spin_once(timeout_sec=0.05)
            assert cond(), f"timed out after {timeout:g} s waiting for {what}\n{logs(procs)}"

        spin_until(lambda: end_client.service_is_ready() and node.count_publishers("/qt/action") > 0
                   and node.count_publishers("/camera/image_raw") > 0 and node.count_publishers("/success") > 0,
                   STARTUP_TIMEOUT_S, "the three nodes")

        # episode 1: the policy acts, the operator ends it as a success through the service
        instruct(INSTRUCTIONS[0])
        spin_until(lambda: sum(a.instruction == INSTRUCTIONS[0] for a in actions) >= 4, EPISODE_TIMEOUT_S,
                   "4 actions of episode 1")
        future = end_client.call_async(EndEpisode.Request(success=True, reason="test operator"))
        spin_until(future.done, 10.0, "the EndEpisode response")
        response = future.result()
        assert response.accepted, response.message
        spin_until(lambda: len(results) >= 1, 10.0, "EpisodeResult 1")
        # the sim runs episode 1 on to max_steps (the recorder ignores that False: nothing is open);
        # waiting for it keeps it from ending episode 2
        spin_until(lambda: len(successes) >= 1, EPISODE_TIMEOUT_S, "the sim's end of episode 1")
        assert successes[0].data is False

        # episode 2: ends at the sim's max_steps -> False on the success topic -> a failure bag
        instruct(INSTRUCTIONS[1])
        spin_until(lambda: len(results) >= 2, EPISODE_TIMEOUT_S, "EpisodeResult 2")

        # episode 3: still running when the nodes are stopped -> the recorder finalizes it ('shutdown')
        instruct(INSTRUCTIONS[2])
        # actions from frames taken after the sim's reset (earlier ones are not recorded, see the recorder)
        fresh_ns = node.get_clock().now().nanoseconds + 300_000_000
        spin_until(lambda: sum(a.instruction == INSTRUCTIONS[2] and
                               a.header.stamp.sec * 10**9 + a.header.stamp.nanosec > fresh_ns for a in actions) >= 3,
                   EPISODE_TIMEOUT_S, "3 fresh actions of episode 3")
    finally:
        stop_nodes([proc for proc, _ in procs.values()])
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert procs["recorder"][0].returncode == 0, logs(procs)

    r1, r2 = results[:2]
    assert (r1.success, r1.end_reason, r1.instruction, r1.reward) == (True, "service", INSTRUCTIONS[0], 1.0)
    assert (r2.success, r2.end_reason, r2.instruction, r2.reward) == (False, "success_topic", INSTRUCTIONS[1], 0.0)
    assert response.bag_path == r1.bag_path
    # recorded = applied + superseded (two decisions within one sim tick: only the latest is applied)
    assert 1 <= r2.num_steps <= 2 * SIM_MAX_STEPS

    # one bag per episode, nothing half-written, each readable by rosbags ...
    found = [str(p) for p in list_episode_bags(bags)]
    assert len(found) == 3 and r1.bag_path in found and r2.bag_path in found, logs(procs)
    assert find_partial_bags(bags) == []
    (third,) = set(found) - {r1.bag_path, r2.bag_path}
    ep3 = read_episode_bag(third)
    assert (ep3.success, ep3.end_reason, ep3.instruction) == (False, "shutdown", INSTRUCTIONS[2]) and len(ep3) >= 1
    for result in (r1, r2):
        ep = read_episode_bag(result.bag_path)
        assert (ep.success, ep.instruction, ep.end_reason, ep.episode_id) == (
            result.success, result.instruction, result.end_reason, result.episode_id)
        assert len(ep) == result.num_steps >= 1
        assert ep.images.shape[1:] == (64, 64, 3) and ep.images.dtype == np.uint8 and ep.images.std() > 0
        assert ep.states.shape == (len(ep), 4) and ep.action_names == ["dx", "dy", "dz", "gripper"]
        assert np.all(np.abs(ep.actions) <= 1.0)

        # ... and by the mcap reader (ros2 profile, messages decode from the schemas in the file)
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory

        (mcap_file,) = Path(result.bag_path).glob("*.mcap")
        with open(mcap_file, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            assert reader.get_header().profile == "ros2"
            decoded = [(ch.topic, msg) for _, ch, _, msg in reader.iter_decoded_messages()]
        assert decoded[0][0] == bf.INSTRUCTION_TOPIC and decoded[0][1].data == result.instruction
        assert decoded[-1][0] == bf.RESULT_TOPIC and decoded[-1][1].success == result.success
        assert sum(topic == bf.ACTION_TOPIC for topic, _ in decoded) == result.num_steps
        img = next(m for topic, m in decoded if topic == bf.IMAGE_TOPIC)
        assert (img.encoding, img.height, img.width) == ("rgb8", 64, 64)

    # the node decided as the evaluation does: deciding again on each step's recorded frame (and state)
    # with the evaluation's decision function gives the same bins at every step
    from qt_policy.research.parity import replay_agreement

    replay = replay_agreement(bags, ckpt)
    assert replay["episodes"] == 3 and replay["steps_identical"] == replay["steps"], replay
    assert replay["max_greedy_q_difference"] < 1e-4

    # ... and a LeRobotDataset the independent checker accepts (data/lerobot.py; skipped without pyarrow/av)
    if importlib.util.find_spec("pyarrow") and importlib.util.find_spec("av"):

        from qt_policy.data.lerobot import export_bags

        assert export_bags(bags, tmp_path / "lerobot", progress=False)["exported"] == 3
        checked = doctor(tmp_path / "lerobot")
        assert checked.returncode == 0, checked.stdout[-3000:]

    # the recorded bags are training data as they are
    from qt_policy.core.checkpoint import read_config
    from qt_policy.tools.train import main as train_main

    run = tmp_path / "run"
    assert train_main(["--data", str(bags), "--out", str(run), *TINY_TRAIN]) == 0
    assert (run / "checkpoint" / "model.safetensors").is_file()
    cfg = read_config(run / "checkpoint")
    assert cfg["step"] == 3 and cfg["data"]["episodes"] == 3 and cfg["data"]["successes"] == 1
    assert cfg["model"]["image_size"] == 64 and cfg["model"]["state_dim"] == 4


class FakeArm:
    """SimArm's interface without MuJoCo: success when the summed dz passes 1.0."""

    action_names = ["dx", "dy", "dz", "gripper"]
    state_names = ["hand_x", "hand_y", "hand_z", "gripper_opening"]

    def __init__(self):
        self.task_name, self.observation, self.z, self.seeds = None, None, 0.0, []

    def _obs(self, step, success=False):
        from qt_policy.sim.arm import SimObservation

        return SimObservation(np.zeros((4, 4, 3), np.uint8), np.array([0, 0, self.z, 1], np.float32),
                              np.zeros(39), success, step)

    def reset(self, task_name, seed):
        self.task_name, self.z = task_name, 0.0
        self.seeds.append(seed)
        self.observation = self._obs(0)
        return self.observation

    def step(self, action):
        self.z += float(action[2])
        self.observation = self._obs(self.observation.step + 1, self.z > 1.0)
        return self.observation, self.observation.success


def test_sim_arm_driver_rules():
    from qt_policy.paths import repo_root
    from qt_policy.runtime.parameters import from_params_file
    from qt_policy.sim.driver import SimArmDriver, SimArmNodeConfig

    assert from_params_file(repo_root() / "config" / "sim_arm.yaml", "sim_arm", SimArmNodeConfig).validate()
    arm = FakeArm()
    drv = SimArmDriver(SimArmNodeConfig(seed=1000, max_steps=3), arm=arm)
    assert drv.tick().observation is None  # nothing to show before the first reset
    assert drv.on_action([0, 0, 0.5, 0]) is None and drv.tick().ended is None  # idle: ignored
    line = drv.on_instruction("make coffee", now_ns=10)
    assert line.startswith("error:") and "'open the drawer'" in line and not drv.active
    assert "drawer-open seed 1000" in drv.on_instruction("Open  the drawer", now_ns=100)
    assert "ignoring malformed action" in drv.on_action([0, 0, 1], 200)
    drv.on_action([0, 0, float("nan"), 0], 200)  # warned once per 10 s: silent now, still ignored
    drv.on_action([0, 0, 0.9, 0], 50)  # decided from a frame before the reset: ignored
    assert drv.tick().observation.step == 0  # no new action: the arm does not move
    drv.on_action([0, 0, 0.2, 0], 200)
    drv.on_action([0, 0, 0.6, 0], 210)  # supersedes the previous one
    tick = drv.tick()
    assert tick.observation.step == 1 and arm.z == pytest.approx(0.6) and drv.superseded == 1 and drv.stale == 1
    drv.on_action([0, 0, 0.6, 0], 300)
    tick = drv.tick()
    assert tick.ended is True and "success after 2 steps" in tick.message and not drv.active
    drv.on_action([0, 0, 0.6, 0], 400)
    assert drv.tick().observation.step == 2  # episode over: actions ignored until the next instruction
    assert "drawer-close seed 1000" in drv.on_instruction("close the drawer", now_ns=500)  # seeds count per task
    for k in range(3):
        drv.on_action([0, 0, -0.1, 0], 600 + k)
        tick = drv.tick()
    assert tick.ended is False and "max_steps 3" in tick.message and arm.seeds == [1000, 1000]
    assert "drawer-open seed 1001" in drv.on_instruction("open the drawer", now_ns=700)
    assert arm.seeds == [1000, 1000, 1001]


def test_sim_arm_driver_applies_twists_as_a_servo_would():
    """action_input commands: each tick applies the time-weighted mean twist since the last tick, inverted by
    the embodiment (0.1 m/s per unit), the latest gripper command; nothing before the first command or reset."""
    from qt_policy.sim.driver import SimArmDriver, SimArmNodeConfig

    arm = FakeArm()
    drv = SimArmDriver(SimArmNodeConfig(max_steps=5, action_input="commands"), arm=arm)
    drv.on_instruction("open the drawer", now_ns=1_000_000_000)  # t = 1.0 s
    drv.on_command("twist", 0.95, (0, 0, 0.09, 0, 0, 0))  # before the reset: not in force
    assert drv.tick(1.1).observation.step == 0  # no command in this episode yet: the arm waits
    drv.observation_published(1.1)  # (the node publishes each tick's frame; steps integrate from it)
    drv.on_command("twist", 1.12, (0, 0, 0.02, 0, 0, 0))
    drv.on_command("twist", 1.16, (0, 0, 0.06, 0, 0, 0))
    drv.on_command("gripper", 1.17, (0.5,))
    tick = drv.tick(1.2)
    # dz over [1.1, 1.2): 0 for 0.02 s, 0.02 m/s for 0.04 s, 0.06 m/s for 0.04 s -> 0.032 m/s -> 0.32 units
    assert tick.observation.step == 1 and arm.z == pytest.approx(0.32, abs=1e-6)
    drv.observation_published(1.21)  # a frame 10 ms after the tick (the step and render took that long)
    tick = drv.tick(1.31)  # 0.06 m/s still in force (timeout 0.2 s): a full step of 0.6 units
    assert arm.z == pytest.approx(0.92, abs=1e-6)
    drv.observation_published(1.31)
    tick = drv.tick(1.51)  # in force until 1.36, then the robot stops: 0.06 * 0.05 / 0.2 = 0.015 m/s
    assert arm.z == pytest.approx(0.92 + 0.15, abs=1e-6) and tick.ended is True
    with pytest.raises(ValueError, match="action_input"):
        SimArmNodeConfig(action_input="joystick").validate()
