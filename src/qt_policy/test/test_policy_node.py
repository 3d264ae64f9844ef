"""The policy node as a separate process, started from launch/policy.launch.xml by the launch tool.

One node process (random-weight checkpoint, narrow action limits) serves every test in file order:
malformed camera input first (the only camera input the node has seen), then the action rate and
limits with good frames, then camera loss and recovery. The test process publishes the camera at
~30 Hz and the instruction, and records what the node publishes with receive times.
"""
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from qt_test_helpers.policy_node import Harness, nonzero, tail, wait_for

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTROL_RATE_HZ = 10.0  # the embodiment's (config/embodiments/metaworld_sawyer.yaml)
SMALL = dict(image_size=32, frames=2, conv_channels=[8, 16], tokens_per_frame=4, d_model=32,
             num_layers=1, num_heads=2, text_dim=384)
LOW = [-0.3, -0.3, -0.3, -1.0]
HIGH = [0.3, 0.3, 0.3, 1.0]
STARTUP_TIMEOUT_S = 120.0  # sentence-transformers import: ~5 s idle, much more on a loaded machine
INSTRUCTION = 'open the drawer'


@pytest.fixture(scope='module')
def system(tmp_path_factory):
    """(harness, launched, config, log path): one policy node process for the whole module."""
    import torch

    from qt_policy.core.checkpoint import save_checkpoint
    from qt_policy.core.config import ModelConfig
    from qt_policy.core.model import QTransformer
    from qt_policy.graph.processes import start_launch_file
    from qt_policy.runtime.parameters import from_params_file
    from qt_policy.runtime.policy_config import PolicyNodeConfig

    tmp = tmp_path_factory.mktemp('policy_node')
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp / 'model', QTransformer(ModelConfig(**SMALL)))
    params = yaml.safe_load((REPO_ROOT / 'config' / 'policy.yaml').read_text())
    params['/**']['ros__parameters'].update(action_low=LOW, action_high=HIGH, help_threshold=0.999, help_ticks=2)
    params_file = tmp / 'policy.yaml'
    params_file.write_text(yaml.safe_dump(params))
    config = from_params_file(params_file, "qt_policy", PolicyNodeConfig)

    ns = f'/qt_node_test_{os.getpid()}'
    log_path = tmp / 'launch.log'
    harness = Harness(ns)
    harness.checkpoint = ckpt
    log = open(log_path, 'w')
    launched = None
    try:
        launched = start_launch_file(REPO_ROOT / 'launch' / 'policy.launch.xml',
                                     {'namespace': ns, 'checkpoint': str(ckpt), 'params_file': str(params_file)},
                                     output=log)
        harness.instruct(INSTRUCTION)
        wait_for(lambda: harness.latest_diag().get('lifecycle') == 'active'
              and harness.latest_diag().get('instruction') == INSTRUCTION,
              STARTUP_TIMEOUT_S, launched, log_path, 'the node to be active with the instruction')
        yield harness, launched, config, log_path
    finally:
        if launched is not None:
            launched.stop()  # SIGINT by pid, wait, SIGKILL
        harness.close()
        log.close()


def test_malformed_images_keep_the_node_alive_and_still(system):
    harness, launched, config, log_path = system
    start = time.monotonic()
    harness.mode = 'bad'
    time.sleep(2.5)
    harness.mode = 'off'
    assert launched.poll() is None, tail(log_path)
    assert harness.snapshot(harness.actions) == [], 'QAction published from malformed images'
    assert not any(nonzero(m) for _, m in harness.snapshot(harness.twists)), 'non-zero twist from malformed images'
    diags = harness.snapshot(harness.diags, since=start + 0.5)
    assert diags, 'no diagnostics while receiving malformed images'
    last = diags[-1][1]
    assert int(last['malformed_images']) > 10
    assert last['state'] == 'holding: no camera image yet'
    log = tail(log_path, 100000)
    assert log.count('dropping malformed camera image') == 1, 'the malformed-image warning must not flood'


def test_action_rate_and_limits(system):
    harness, launched, config, log_path = system
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions), 5.0, launched, log_path, 'the first QAction')
    t0 = time.monotonic() + 1.0  # warm-up
    time.sleep(4.0)
    window = [(t, m) for t, m in harness.snapshot(harness.actions, since=t0) if t <= t0 + 3.0]
    times = np.array([t for t, _ in window])
    rate = (len(times) - 1) / (times[-1] - times[0])
    diag = harness.latest_diag()
    print(f'\n[policy node] QAction rate {rate:.2f} Hz over {times[-1] - times[0]:.2f} s '
          f'(control_rate_hz {CONTROL_RATE_HZ}); node diagnostics: decode p50 '
          f'{diag.get("decode_latency_p50_ms")} ms, achieved {diag.get("achieved_rate_hz")} Hz')
    assert abs(rate - CONTROL_RATE_HZ) <= 0.1 * CONTROL_RATE_HZ, f'rate {rate:.2f} Hz'

    actions = harness.snapshot(harness.actions)
    low, high = np.array(LOW, np.float32), np.array(HIGH, np.float32)
    for _, msg in actions:
        values = np.array(msg.values, np.float32)
        assert np.all(values >= low) and np.all(values <= high), values
        assert list(msg.dimension_names) == ['dx', 'dy', 'dz', 'gripper']
        assert msg.instruction == INSTRUCTION and not msg.terminate
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) in harness.sent_stamps
        assert all(0 <= b < 256 for b in msg.bins) and 0.0 <= msg.q_value <= 1.0
    scale = 0.1 * np.abs(np.array(HIGH[:3]))  # the embodiment's 0.1 m/s per unit action, within the envelope
    for _, msg in harness.snapshot(harness.twists):
        assert np.all(np.abs([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z]) <= scale + 1e-6)
        assert msg.header.frame_id == 'base_link'
    grippers = harness.snapshot(harness.grippers)
    assert grippers and all(-1.0 <= m.data <= 1.0 for _, m in grippers)


def test_camera_loss_stops_motion_and_frames_resume_it(system):
    harness, launched, config, log_path = system
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.3), 3.0, launched, log_path,
          'actions with a live camera')
    harness.mode = 'off'
    time.sleep(0.1)  # let an in-flight camera tick finish
    stopped = harness.last_good_sent
    time.sleep(config.stale_timeout_s + 1.0)
    limit = stopped + config.stale_timeout_s + 1.0 / CONTROL_RATE_HZ + 0.05  # 50 ms transport slack
    late_actions = [t - stopped for t, _ in harness.snapshot(harness.actions, since=limit)]
    late_twists = [t - stopped for t, m in harness.snapshot(harness.twists, since=limit) if nonzero(m)]
    assert not late_actions, f'QAction {late_actions} s after the last frame'
    assert not late_twists, f'non-zero twist {late_twists} s after the last frame'
    stops = [m for t, m in harness.snapshot(harness.twists, since=stopped) if not nonzero(m)]
    assert stops, 'no zero twist sent when the camera went stale'
    assert harness.latest_diag()['state'].startswith('holding: camera stale')

    resumed = time.monotonic()
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions, since=resumed), 2.0, launched, log_path,
          'actions after the camera came back')
    harness.mode = 'off'
    assert launched.poll() is None


def _rate(harness, seconds, warmup=1.0):
    t0 = time.monotonic() + warmup
    time.sleep(warmup + seconds)
    times = np.array([t for t, _ in harness.snapshot(harness.actions, since=t0) if t <= t0 + seconds])
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0


@pytest.mark.parametrize('size', [(480, 640), (720, 1280)])
def test_real_camera_sizes_keep_the_control_rate(system, size):
    """640x480 and 1280x720 rgb8 at 30 Hz from the documented shell (the SHM profile of scripts/env.sh)."""
    harness, launched, config, log_path = system
    harness.size, harness.mode = size, 'good'
    try:
        wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.3), 10.0, launched, log_path,
              f'actions from {size[1]}x{size[0]} frames')
        rate = _rate(harness, 3.0)
    finally:
        harness.mode, harness.size = 'off', (48, 64)
    print(f'\n[policy node] {size[1]}x{size[0]} at 30 Hz: {rate:.2f} actions/s')
    assert abs(rate - CONTROL_RATE_HZ) <= 0.1 * CONTROL_RATE_HZ, f'rate {rate:.2f} Hz'


def test_frames_older_than_the_stale_timeout_never_make_an_action(system):
    harness, launched, config, log_path = system
    time.sleep(config.stale_timeout_s + 0.3)
    since = time.monotonic()
    harness.mode = 'old'  # arriving now, taken 1 s ago
    time.sleep(1.5)
    harness.mode = 'off'
    assert harness.snapshot(harness.actions, since=since) == []
    assert harness.latest_diag()['state'].startswith('holding: camera stale')


def test_rate_holds_with_huge_frames_and_a_huge_instruction(system):
    """A 4000x4000 frame every second on the camera topic (from another process, as a second driver
    would send it), then a 100,000-character instruction: the node goes on deciding on the other
    frames through both, and the instruction neither slows it nor fakes a stale camera."""
    import subprocess
    import sys

    harness, launched, config, log_path = system
    harness.mode = 'good'
    huge = subprocess.Popen([sys.executable, '-m', 'qt_policy.dev.flood_camera', f'{harness.ns}/camera/image_raw'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.3), 10.0, launched, log_path,
              'actions with huge frames in the stream')
        wait_for(lambda: harness.node.count_publishers(f'{harness.ns}/camera/image_raw') >= 2, 60.0, launched,
              log_path, 'the huge-frame publisher')
        # its start-up (imports, 48 MB of random pixels) and the first huge samples (each process touches
        # its shared-memory pages for the first time: measured ~0.5 s of stalls once) are over
        time.sleep(4.5)
        assert huge.poll() is None
        rate_huge = _rate(harness, 4.0)
        huge.terminate()  # the instruction is measured on its own
        huge.wait(10)
        time.sleep(1.0)
        t_long = time.monotonic()
        harness.instruct('open the drawer ' + 'very ' * 20000)  # 100,016 characters
        rate_long = _rate(harness, 3.0, warmup=0.0)
        holds = [m for t, m in harness.snapshot(harness.twists, since=t_long) if not nonzero(m)]
    finally:
        huge.terminate()
        huge.wait(10)
        harness.mode = 'off'
        harness.instruct(INSTRUCTION)
    print(f'\n[policy node] with a 4000x4000 frame a second: {rate_huge:.2f} actions/s; '
          f'while a 100,000-character instruction arrives: {rate_long:.2f} actions/s')
    assert abs(rate_long - CONTROL_RATE_HZ) <= 0.1 * CONTROL_RATE_HZ, f'rate {rate_long:.2f} Hz'
    # The node goes on deciding while huge frames arrive. The rate is a figure, not a bound (8.6-9.3 Hz on
    # the idle 2-core VM, 4.96 Hz once in a clean-clone CI run; benchmarks/bench_policy_node.py --flood);
    # the floor catches an executor blocked for whole control periods. Not asserted: that the flood never
    # makes the camera look stale. Once in ~8 s of flood the node saw no small frame for 0.52 s and held
    # (one stop command, acting again 30 ms later); cause not found (docs/nodes.md)
    assert rate_huge >= 0.3 * CONTROL_RATE_HZ, f'rate {rate_huge:.2f} Hz'
    assert 'camera stale' not in tail(log_path, 100000).split("open the drawer very")[-1]
    assert len(holds) <= 1  # at most the new episode's one zero twist, never a stale-camera hold


def test_node_bins_equal_the_harness_bins_for_the_same_frames(system):
    """The node (its own process, the ROS path) and the evaluation rollout (tools.evaluate.BatchPolicy)
    choose the same bins for the same sequence of non-square frames: one observation pipeline."""
    from types import SimpleNamespace

    from qt_policy.core.checkpoint import load_policy_model
    from qt_policy.core.text import shared_encoder
    from qt_policy.evaluation import BatchPolicy

    harness, launched, config, log_path = system
    harness.mode = 'off'
    text = 'close the drawer'
    harness.instruct(text)
    wait_for(lambda: harness.latest_diag().get('instruction') == text, 10.0, launched, log_path, 'the new instruction')
    time.sleep(0.3)
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(8)]  # 4:3, like a robot camera
    node_bins = []
    for rgb in frames:  # one frame per control step, as a 10 Hz camera sends them
        since = time.monotonic()
        stamp = harness.publish_rgb(rgb)
        wait_for(lambda: any((m.header.stamp.sec, m.header.stamp.nanosec) == stamp
                          for _, m in harness.snapshot(harness.actions, since=since)), 5.0, launched, log_path,
              'the action of a frame')
        (msg,) = [m for _, m in harness.snapshot(harness.actions, since=since)
                  if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp]
        node_bins.append(list(msg.bins))
        time.sleep(max(0.0, since + 0.1 - time.monotonic()))
    harness.instruct(INSTRUCTION)

    model = load_policy_model(harness.checkpoint)
    policy = BatchPolicy(model, shared_encoder())
    policy.reset(1, text)
    expected = []
    for rgb in frames:
        out = policy.act([SimpleNamespace(image=rgb, camera_images=(rgb,), state=None)], [0])
        expected.append(out.bins[0].tolist())
    assert node_bins == expected


def test_hold_input_stops_within_a_tick_and_is_latched(system):
    """~/enable false: a zero twist at once and no action after it; a latched enable=False from a node that
    restarts keeps holding; true (service or topic) acts again."""
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool

    harness, launched, config, log_path = system
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.5), 10.0, launched, log_path,
          'actions before the hold')
    client = harness.node.create_client(SetBool, f'{harness.ns}/qt_policy/enable')
    assert client.wait_for_service(timeout_sec=10.0)
    sent = time.monotonic()
    future = client.call_async(SetBool.Request(data=False))
    wait_for(future.done, 5.0, launched, log_path, 'the ~/enable response')
    answered = time.monotonic()
    assert future.result().success
    stops = [t for t, m in harness.snapshot(harness.twists, since=sent) if not nonzero(m)]
    wait_for(lambda: [t for t, m in harness.snapshot(harness.twists, since=sent) if not nonzero(m)], 2.0, launched,
          log_path, 'the zero twist of the hold')
    stops = [t for t, m in harness.snapshot(harness.twists, since=sent) if not nonzero(m)]
    # a tick, plus the service call's round trip and the twist's delivery (0.103 s seen once on a loaded CI run)
    assert stops[0] - sent <= 1.0 / CONTROL_RATE_HZ + 0.025, f'stop {stops[0] - sent:.3f} s after the request'
    time.sleep(1.0)
    assert not harness.snapshot(harness.actions, since=answered + 0.05), 'acted while disabled'
    wait_for(lambda: harness.latest_diag(since=answered).get('enabled') == 'false', 3.0, launched, log_path,
          'diagnostics of the hold')
    # the enable topic: a latched False from a node, which then goes away and comes back (a restart)
    latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    client.call_async(SetBool.Request(data=True))
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.3), 5.0, launched, log_path,
          'actions after enable')
    pub = harness.node.create_publisher(Bool, f'{harness.ns}/enable', latched)
    # matched before it publishes and goes away: a sample whose writer is gone before discovery reaches
    # no one (DDS), and a diagnostic from before the service's enable could still say 'false'
    wait_for(lambda: pub.get_subscription_count() >= 1, 10.0, launched, log_path, 'the node to subscribe to enable')
    published = time.monotonic()
    pub.publish(Bool(data=False))
    wait_for(lambda: harness.latest_diag(since=published).get('enabled') == 'false', 5.0, launched, log_path,
          'the topic hold')
    harness.node.destroy_publisher(pub)  # the operator's node restarts: the hold stays
    time.sleep(1.0)
    t_gone = time.monotonic()
    time.sleep(1.0)
    assert not harness.snapshot(harness.actions, since=t_gone) and harness.latest_diag().get('enabled') == 'false'
    pub = harness.node.create_publisher(Bool, f'{harness.ns}/enable', latched)
    wait_for(lambda: pub.get_subscription_count() >= 1, 10.0, launched, log_path, 'the node to subscribe to enable')
    pub.publish(Bool(data=True))
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.3), 5.0, launched, log_path,
          'actions after the topic enabled it again')
    harness.node.destroy_publisher(pub)




def test_an_operator_takes_over_within_a_tick_and_hands_back(system):
    """TwistStamped from an operator (a 20 Hz joystick teleop): the robot's twist topic carries theirs, under
    the node's action envelope (one command stream: the node is the mux); when they stop, the policy drives."""
    from geometry_msgs.msg import TwistStamped

    harness, launched, config, log_path = system
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.5), 10.0, launched, log_path,
          'actions before the takeover')
    pub = harness.node.create_publisher(TwistStamped, f'{harness.ns}/{config.operator_twist_topic}', 10)
    wait_for(lambda: pub.get_subscription_count() >= 1, 10.0, launched, log_path, 'the operator subscription')
    sent = time.monotonic()
    while time.monotonic() < sent + 1.5:
        msg = TwistStamped()
        msg.twist.linear.x = 0.05  # 0.5 action units; the node's envelope allows 0.3
        pub.publish(msg)
        time.sleep(0.05)
    released = time.monotonic()
    during = [m for t, m in harness.snapshot(harness.twists, since=sent + 2.0 / CONTROL_RATE_HZ) if t < released]
    assert len(during) >= 8, f'{len(during)} twists while the operator drove'
    assert all(m.twist.linear.x == pytest.approx(0.03) and m.twist.linear.y == 0.0 and m.twist.linear.z == 0.0
               for m in during), [(m.twist.linear.x, m.twist.linear.y) for m in during]
    actions = [m for t, m in harness.snapshot(harness.actions, since=sent + 2.0 / CONTROL_RATE_HZ) if t < released]
    assert actions and all(list(m.values[:3]) == pytest.approx([0.3, 0.0, 0.0]) for m in actions)
    assert all(m.source == 'operator' and m.intervention for m in actions)  # the data says who drove
    back = config.takeover_release_s + 2.0 / CONTROL_RATE_HZ
    wait_for(lambda: any(nonzero(m) and (m.twist.linear.y != 0.0 or m.twist.linear.x != pytest.approx(0.03))
                         for _, m in harness.snapshot(harness.twists, since=released + back)), 5.0, launched,
             log_path, 'the policy to drive again')
    harness.node.destroy_publisher(pub)
    assert 'operator drives' in tail(log_path) and 'the policy drives again' in tail(log_path)


def test_a_low_success_estimate_asks_for_help_on_a_latched_topic(system):
    """help_threshold 0.999 (above any Q of the random model), 2 ticks: help_needed becomes True, and a node
    that subscribes late still gets it (latched)."""
    from std_msgs.msg import Bool

    harness, launched, config, log_path = system
    harness.mode = 'good'
    wait_for(lambda: harness.snapshot(harness.actions, since=time.monotonic() - 0.5), 10.0, launched, log_path,
          'actions')
    got = []
    latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = harness.node.create_subscription(Bool, f'{harness.ns}/{config.help_topic}', lambda m: got.append(m.data),
                                           latched)
    wait_for(lambda: got and got[-1] is True, 10.0, launched, log_path, 'help_needed True')
    harness.node.destroy_subscription(sub)
    assert 'asking for help' in tail(log_path)
