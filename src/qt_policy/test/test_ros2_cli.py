"""The README's commands with the real ROS 2 tools: `ros2 launch`, `ros2 topic pub`, `ros2 service call`,
`ros2 lifecycle`, `ros2 param`.

They need the wheels of ../shared/ros2_cli (scripts/setup.sh installs them where they exist); a user's
clone has none, and then every test here is skipped. Each launch runs in its own process group and is
ended by that group's id.
"""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROS2 = shutil.which("ros2")
try:
    import launch_ros
    import ros2topic
except ImportError:
    ROS2 = None
pytestmark = pytest.mark.skipif(ROS2 is None, reason="the ros2 CLI / launch_ros wheels are not installed "
                                                     "(scripts/setup.sh installs ../shared/ros2_cli when present)")

NS = "arm1"


@pytest.fixture(autouse=True)
def no_daemon_left():
    """The commands here run with --no-daemon where they can; a daemon one of them started anyway is stopped."""
    yield
    subprocess.run([ROS2, "daemon", "stop"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


class Launched:
    """`ros2 launch ...` in its own process group, its output in a file."""

    def __init__(self, args, cwd: Path, log: Path):
        self.log = log
        self.proc = subprocess.Popen([ROS2, "launch", *args], cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ))

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.text()))

    def stop(self):
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # children that outlived the launch process (none expected)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ros2(*args, timeout=60, check=True) -> str:
    out = subprocess.run([ROS2, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    if check:
        assert out.returncode == 0, f"ros2 {' '.join(args)}: rc {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def wait_until(predicate, timeout, what, launched=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if launched is not None:
            assert launched.proc.poll() is None, f"ros2 launch ended while waiting for {what}:\n{launched.text()[-4000:]}"
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" +
                         (f":\n{launched.text()[-4000:]}" if launched else ""))


def episodes(launched):
    """Episodes started so far in each node, from their log lines."""
    return (launched.count(r"\[(?:\w+\.)?sim_arm\]: episode \d+: task"), launched.count(r"\[(?:\w+\.)?qt_policy\]: instruction: '"),
            launched.count(r"\[(?:\w+\.)?qt_recorder\]: episode \S+ started"))


def test_the_readme_commands_drive_the_simulated_arm(tmp_path):
    """sim_demo in a namespace; instructions by `ros2 topic pub` as written (--once, -t 3, -r 1): each starts
    exactly one episode in every node and its bag holds every step; the end_episode and enable services."""
    launched = Launched(["qt_policy", "sim_demo.launch.xml", f"namespace:={NS}"], tmp_path, tmp_path / "launch.log")
    try:
        wait_until(lambda: "active" in ros2("lifecycle", "get", "--no-daemon", f"/{NS}/qt_policy", check=False), 120,
                   "the policy node to be active", launched)
        wait_until(lambda: "recording 'metaworld_sawyer'" in launched.text() and "sim arm ready" in launched.text(),
                   60, "the recorder and the sim arm", launched)

        # --once, as the README writes it: a volatile publisher that leaves after one subscription matched
        ros2("topic", "pub", "--once", f"/{NS}/instruction", "std_msgs/msg/String", "{data: 'open the drawer'}")
        wait_until(lambda: episodes(launched) == (1, 1, 1), 30, "one episode in every node", launched)
        wait_until(lambda: len(ended(launched)) == 1, 40, "the end of the first episode", launched)

        # -t 3: the same text three times from one publisher is one episode
        ros2("topic", "pub", "-t", "3", f"/{NS}/instruction", "std_msgs/msg/String", "{data: 'close the drawer'}")
        wait_until(lambda: episodes(launched) == (2, 2, 2), 30, "a second episode in every node", launched)
        wait_until(lambda: len(ended(launched)) == 2, 40, "the end of the second episode", launched)

        # -r 1 (the default rate, publishing until stopped): one episode however long it runs
        pub = subprocess.Popen([ROS2, "topic", "pub", "-r", "1", f"/{NS}/instruction", "std_msgs/msg/String",
                                "{data: 'open the window'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        try:
            wait_until(lambda: episodes(launched) == (3, 3, 3), 30, "a third episode in every node", launched)
            time.sleep(3.5)  # three more repetitions
        finally:
            os.killpg(pub.pid, signal.SIGINT)
            pub.wait(15)
        assert episodes(launched) == (3, 3, 3), launched.text()[-4000:]
        # the operator ends and labels it (docs/any_arm.md)
        reply = ros2("service", "call", f"/{NS}/qt_recorder/end_episode", "qt_msgs/srv/EndEpisode",
                     "{success: true, reason: 'done'}")
        assert "accepted=True" in reply, reply

        # the hold input, as a service and as a topic from ros2 topic pub
        reply = ros2("service", "call", f"/{NS}/qt_policy/enable", "std_srvs/srv/SetBool", "{data: false}")
        assert "success=True" in reply, reply
        ros2("topic", "pub", "--once", f"/{NS}/enable", "std_msgs/msg/Bool", "{data: true}")
        wait_until(lambda: launched.count(r"\[(?:\w+\.)?qt_policy\]: enabled by") >= 1, 15, "enabled by the topic",
                   launched)
        assert "checkpoint" in discovering("list", f"/{NS}/qt_policy")
    finally:
        launched.stop()
    text = launched.text()
    # the first two episodes ended on the arm's own terms: their bags hold exactly the steps the arm executed
    arm_steps = [int(n) for n in re.findall(r"\[(?:\w+\.)?sim_arm\]: episode \d+ \([^)]*\): .*? after (\d+) steps",
                                            text)]
    assert [steps for steps, _ in ended(launched)[:2]] == arm_steps[:2], (ended(launched), arm_steps, text[-4000:])
    assert [reason for _, reason in ended(launched)] == ["success_topic", "success_topic", "service"], ended(launched)
    assert len(sorted((tmp_path / "data" / "recorded").glob("episode_*"))) == 3
    assert "incompatible QoS" not in text


def ended(launched):
    """(steps, end_reason) of each episode the recorder finished."""
    return [(int(n), r) for n, r in re.findall(
        r"\[(?:\w+\.)?qt_recorder\]: episode \S+ '[^']*': success=\w+ steps=(\d+) reason=(\w+)", launched.text())]


def discovering(verb, *args) -> str:
    """`ros2 param <verb> ...` on a node: without the daemon each call discovers the graph anew
    ("Node not found" while it has not yet), so a miss is retried."""
    for _ in range(20):
        out = subprocess.run([ROS2, "param", verb, "--no-daemon", "--spin-time", "2", *args],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, start_new_session=True)
        if out.returncode == 0:
            return out.stdout.strip()
        time.sleep(0.5)
    raise AssertionError(f"ros2 param {verb} {' '.join(args)}: {out.stdout}{out.stderr}")


def _param(node, name):
    return discovering("get", node, name)


@pytest.mark.parametrize("given", [False, True])
def test_launch_arguments_override_the_params_file_only_when_given(tmp_path, given):
    """recorder.launch.xml and policy.launch.xml with a params file that sets every value they have an
    argument for: the file's values, unless the argument is given."""
    rec_file = tmp_path / "recorder.yaml"
    rec_file.write_text("/**:\n  ros__parameters:\n    output_dir: from_file\n    action_source: teleop\n"
                        "    embodiment: config/embodiments/robosuite_panda.yaml\n")
    pol_file = tmp_path / "policy.yaml"
    pol_file.write_text("/**:\n  ros__parameters:\n    checkpoint: /nowhere/from_file\n    autostart: false\n")
    rec_args = ["output_dir:=from_arg", "action_source:=policy",
                "embodiment:=config/embodiments/metaworld_sawyer.yaml"] if given else []
    pol_args = ["checkpoint:=/nowhere/from_arg"] if given else []
    recorder = Launched(["qt_policy", "recorder.launch.xml", f"params_file:={rec_file}", *rec_args], tmp_path,
                        tmp_path / "recorder.log")
    policy = Launched(["qt_policy", "policy.launch.xml", f"params_file:={pol_file}", *pol_args], tmp_path,
                      tmp_path / "policy.log")
    try:
        for node, launched in (("/qt_recorder", recorder), ("/qt_policy", policy)):
            wait_until(lambda n=node: n in ros2("node", "list", "--no-daemon", check=False), 60, f"{node} up", launched)
        expected = {"output_dir": "from_arg", "action_source": "policy", "embodiment": "metaworld_sawyer.yaml"} \
            if given else {"output_dir": "from_file", "action_source": "teleop", "embodiment": "robosuite_panda.yaml"}
        for name, value in expected.items():
            assert value in _param("/qt_recorder", name), (name, recorder.text()[-3000:])
        assert ("from_arg" if given else "from_file") in _param("/qt_policy", "checkpoint")
        # what the recorder uses, in its own words
        assert f"to {tmp_path / expected['output_dir']}" in recorder.text()
    finally:
        recorder.stop()
        policy.stop()
