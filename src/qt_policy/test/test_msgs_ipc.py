"""qt_msgs across processes: a separate Python process publishes / serves, this one receives.

Needs the colcon build of src/qt_msgs (scripts/setup.sh + scripts/env.sh). Skipped only when rclpy
itself is absent; if rclpy is there but qt_msgs does not import, the tests fail.
"""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
TIMEOUT_S = 15.0

# Values exactly representable in float32, so equality is exact after the round trip.
QACTION = {
    'frame_id': 'base_link',
    'stamp': [12, 345000000],
    'instruction': 'open the drawer',
    'dimension_names': ['dx', 'dy', 'dz', 'gripper'],
    'values': [0.25, -0.5, 1.0, -1.0],
    'bins': [160, 64, 255, 0],
    'q_value': 0.75,
    'terminate': True,
}
EPISODE = {
    'episode_id': 'ep_000042',
    'instruction': 'open the drawer',
    'success': True,
    'reward': 1.0,
    'num_steps': 137,
    'end_reason': 'success_topic',
    'bag_path': '/tmp/bags/ep_000042',
}

# the end of both child processes: spin until SIGINT/SIGTERM, then shut down cleanly
SPIN = textwrap.dedent('''
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
''')

PUBLISHER = textwrap.dedent('''
    import json, sys
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
    from qt_msgs.msg import QAction, EpisodeResult

    spec = json.loads(sys.argv[1])
    a, e = spec['qaction'], spec['episode']
    rclpy.init()
    node = rclpy.create_node('qt_msgs_ipc_publisher')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
    pub_a = node.create_publisher(QAction, spec['topic'] + '/action', qos)
    pub_e = node.create_publisher(EpisodeResult, spec['topic'] + '/episode', qos)

    def tick():
        m = QAction()
        m.header.frame_id = a['frame_id']
        m.header.stamp.sec, m.header.stamp.nanosec = a['stamp']
        m.instruction = a['instruction']
        m.dimension_names = a['dimension_names']
        m.values = a['values']
        m.bins = a['bins']
        m.q_value = a['q_value']
        m.terminate = a['terminate']
        pub_a.publish(m)
        r = EpisodeResult()
        r.header.frame_id = a['frame_id']
        for k, v in e.items():
            setattr(r, k, v)
        pub_e.publish(r)

    node.create_timer(0.2, tick)  # 5 Hz until killed
''') + SPIN

SERVER = textwrap.dedent('''
    import sys
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from qt_msgs.srv import EndEpisode

    rclpy.init()
    node = rclpy.create_node('qt_msgs_ipc_server')

    def handle(req, resp):
        resp.accepted = bool(req.success)
        resp.message = 'ended: ' + req.reason
        resp.bag_path = '/tmp/bags/' + req.reason.replace(' ', '_')
        return resp

    node.create_service(EndEpisode, sys.argv[1], handle)
''') + SPIN




@pytest.fixture
def ros_node(request):
    """A node in its own rclpy context (does not touch the global default context)."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('qt_msgs_ipc_test_' + request.node.name[:20].replace('[', '_').strip(']'),
                             context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _start(script, args, log_path):
    log = open(log_path, 'wb')
    try:
        proc = subprocess.Popen([sys.executable, '-c', script, *args], env=os.environ.copy(),
                                stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    return proc


def _stop(proc):
    """Stop the child by its pid: SIGINT (clean rclpy shutdown), then SIGKILL."""
    from qt_policy.graph.processes import stop_processes
    stop_processes([proc], timeout=5)


def _child_log(log_path):
    try:
        return log_path.read_text(errors='replace')[-3000:]
    except OSError:
        return ''


def test_qaction_and_episode_result_cross_process(ros_node, tmp_path):
    from qt_msgs.msg import EpisodeResult, QAction

    node, executor = ros_node
    topic = f'/qt_ipc_test_{os.getpid()}'
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
    got = {}
    node.create_subscription(QAction, topic + '/action', lambda m: got.setdefault('a', m), qos)
    node.create_subscription(EpisodeResult, topic + '/episode', lambda m: got.setdefault('e', m), qos)

    log_path = tmp_path / 'publisher.log'
    spec = json.dumps({'topic': topic, 'qaction': QACTION, 'episode': EPISODE})
    proc = _start(PUBLISHER, [spec], log_path)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while ('a' not in got or 'e' not in got) and time.monotonic() < deadline:
            assert proc.poll() is None, f'publisher exited early:\n{_child_log(log_path)}'
            executor.spin_once(timeout_sec=0.1)
        assert 'a' in got and 'e' in got, (
            f'no message within {TIMEOUT_S}s (got {sorted(got)}); publisher log:\n{_child_log(log_path)}')
    finally:
        _stop(proc)

    a = got['a']
    assert a.header.frame_id == QACTION['frame_id']
    assert [a.header.stamp.sec, a.header.stamp.nanosec] == QACTION['stamp']
    assert a.instruction == QACTION['instruction']
    assert list(a.dimension_names) == QACTION['dimension_names']
    assert list(a.values) == QACTION['values']
    assert list(a.bins) == QACTION['bins']
    assert a.q_value == QACTION['q_value']
    assert a.terminate is QACTION['terminate']

    e = got['e']
    for key, expected in EPISODE.items():
        assert getattr(e, key) == expected, key


def test_end_episode_service_cross_process(ros_node, tmp_path):
    from qt_msgs.srv import EndEpisode

    node, executor = ros_node
    service = f'/qt_ipc_test_{os.getpid()}/end_episode'
    client = node.create_client(EndEpisode, service)

    log_path = tmp_path / 'server.log'
    proc = _start(SERVER, [service], log_path)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not client.service_is_ready() and time.monotonic() < deadline:
            assert proc.poll() is None, f'server exited early:\n{_child_log(log_path)}'
            executor.spin_once(timeout_sec=0.1)
        assert client.service_is_ready(), f'service not up within {TIMEOUT_S}s:\n{_child_log(log_path)}'

        # service_is_ready() sees the server's request reader, not whether the server has matched our
        # response reader yet: right after discovery Fast DDS may drop the response ("failed to send
        # response (timeout)"). The server here is stateless, so ask again until one answer arrives.
        while True:
            future = client.call_async(EndEpisode.Request(success=True, reason='operator stop'))
            executor.spin_until_future_complete(future, timeout_sec=2.0)
            if future.done() or time.monotonic() > deadline:
                break
            client.remove_pending_request(future)
        assert future.done(), f'no response within {TIMEOUT_S}s:\n{_child_log(log_path)}'
        resp = future.result()
    finally:
        _stop(proc)

    assert resp.accepted is True
    assert resp.message == 'ended: operator stop'
    assert resp.bag_path == '/tmp/bags/operator_stop'
