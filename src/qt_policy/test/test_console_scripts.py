"""The console scripts: every entry point of setup.py imports, the installed ones run, --help names itself."""
import ast
import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def entry_points() -> dict[str, str]:
    tree = ast.parse(SETUP.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return dict((s.strip() for s in item.value.split("=", 1)) for item in value.elts)
    raise AssertionError("no console_scripts in setup.py")


def test_every_entry_point_is_a_callable_main():
    scripts = entry_points()
    assert {"qt-train", "qt-evaluate", "qt-import-bags", "qt-baselines", "qt-demo", "qt-launch", "policy_node"} <= set(scripts)
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_cli_names_match_their_help():
    """`qt-x --help` says `usage: qt-x`: the name a user types is the one the help shows."""
    for name, target in entry_points().items():
        if not name.startswith("qt-") or name == "qt-selfcheck":
            continue
        module = importlib.import_module(target.split(":")[0])
        with pytest.raises(SystemExit) as done:
            import contextlib
            import io
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                module.main(["--help"])
        assert done.value.code == 0
        assert out.getvalue().startswith(f"usage: {name}"), (name, out.getvalue()[:80])


@pytest.mark.skipif(not os.environ.get("QT_ROS_ROOT"), reason="needs the environment of scripts/env.sh")
def test_installed_qt_train_runs_from_path():
    exe = shutil.which("qt-train")
    assert exe is not None, "qt-train not on PATH: scripts/setup.sh builds it, scripts/env.sh puts it on PATH"
    assert Path(exe).parent.name == "qt_policy" and Path(exe).parent.parent.name == "lib"  # what ros2 run finds
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "share of each batch drawn from successful episodes only" in " ".join(out.stdout.split())
