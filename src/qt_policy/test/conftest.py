"""Shared test set-up: the source tree on sys.path and safe ROS settings for every test."""
import os
import random
import sys
import time
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_ROOT.parents[1]
if str(PACKAGE_ROOT) not in sys.path:  # core tests need no colcon build
    sys.path.insert(0, str(PACKAGE_ROOT))


@pytest.fixture(scope="session", autouse=True)
def ros_env():
    """Never let a test talk over the network: Fast DDS over shared memory only, an own domain id
    per run, ROS logs inside the tree, offline Hugging Face. scripts/test.sh sets these too."""
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_shm.xml"))
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ.setdefault("ROS_HOME", str(REPO_ROOT / ".ros"))
    os.environ.setdefault("ROS_LOG_DIR", str(Path(os.environ["ROS_HOME"]) / "log"))
    os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")  # a node that crashes (SIGSEGV) leaves its Python stack in its log
    Path(os.environ["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    started = time.time()
    yield
    from qt_policy.graph.shm_segments import remove_own_segments, remove_stale_segments
    remove_stale_segments(since=started)  # what the nodes this run started left in /dev/shm (RAM)
    remove_own_segments()  # and this process's own participants' (every test is done)
