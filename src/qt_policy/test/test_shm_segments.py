"""Left-over Fast DDS segments are removed only when no process maps them and they are recent."""
import mmap
import os
import time
from pathlib import Path

import pytest

from qt_policy.graph.shm_segments import SHM, remove_stale_segments

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm")


def test_only_unmapped_recent_segments_go():
    t0 = time.time() - 1
    tag = f"qttest{os.getpid()}"
    stale, mapped, old = (SHM / f"fastdds_{tag}_{k}" for k in ("stale", "mapped", "old"))
    for path in (stale, mapped, old):
        path.write_bytes(b"\0" * 4096)
        Path(f"{path}_el").write_bytes(b"")
    os.utime(old, (t0 - 3600, t0 - 3600))
    with open(mapped, "r+b") as f, mmap.mmap(f.fileno(), 4096) as view:
        try:
            removed = remove_stale_segments(since=t0)
            assert stale in removed and not stale.exists() and not Path(f"{stale}_el").exists()
            assert mapped.exists() and old.exists() and Path(f"{mapped}_el").exists()
            assert view[0] == 0
        finally:
            for path in (stale, mapped, old):
                for p in (path, Path(f"{path}_el")):
                    p.unlink(missing_ok=True)


def test_a_process_removes_its_own_segments_at_exit(tmp_path):
    """In a child process (the test process's own ROS participants must keep theirs)."""
    import subprocess
    import sys

    seg = SHM / f"fastdds_qttest{os.getpid()}_own"
    code = ("import mmap, sys; from pathlib import Path; from qt_policy.graph.shm_segments import remove_own_segments\n"
            f"p = Path({str(seg)!r}); p.write_bytes(bytes(4096)); Path(str(p) + '_el').write_bytes(b'')\n"
            "f = open(p, 'r+b'); m = mmap.mmap(f.fileno(), 4096)\n"
            "removed = remove_own_segments(); m[0] = 1\n"
            "sys.exit(0 if p in removed and not p.exists() and not Path(str(p) + '_el').exists() else 1)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    try:
        assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
    finally:
        seg.unlink(missing_ok=True)
        Path(f"{seg}_el").unlink(missing_ok=True)
