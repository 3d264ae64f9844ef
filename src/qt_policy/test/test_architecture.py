"""The code's borders hold (docs/architecture.md): the import contracts of src/qt_policy/.importlinter
(no circles, the layers, only command lines import command lines, the core and most rooms without
rclpy), small modules, and tests that stand alone and fail when a required dependency is missing."""
import ast
from pathlib import Path

from importlinter.cli import lint_imports

PACKAGE = Path(__file__).resolve().parents[1]  # src/qt_policy
MAX_MODULE_LINES = 400


def test_the_import_contracts_are_kept(capsys):
    code = lint_imports(config_filename=str(PACKAGE / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out[-4000:]


def test_no_source_file_is_longer_than_the_limit():
    """The package's modules and the tests alike."""
    long = {str(f.relative_to(PACKAGE)): n for f in PACKAGE.rglob("*.py")
            if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these files (one job each): {long}"


def _test_files():
    return sorted((PACKAGE / "test").glob("test_*.py"))


def test_no_test_module_imports_another():
    """Shared helpers live in test/qt_test_helpers/, so each test module can be read and run alone."""
    found = []
    for f in _test_files():
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{f.name} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not found, found


def test_required_dependencies_are_not_skipped_when_missing():
    """pytest.importorskip would turn a broken install (say, a bad rclpy wheel) into green skips; optional
    things (the real ros2 CLI, the LeRobot reference data) skip with a reason instead."""
    found = [f.name for f in _test_files() if "importorskip(" in f.read_text() and f.name != Path(__file__).name]
    assert not found, found


def test_every_benchmark_script_still_starts():
    """Benchmarks live outside the package and no import contract sees them: a moved module must not
    break them silently (each prints its --help)."""
    import subprocess
    import sys

    scripts = sorted((PACKAGE.parents[1] / "benchmarks").glob("*.py"))
    assert scripts
    for script in scripts:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "usage" in out.stdout, f"{script.name}: {out.stderr[-1500:]}"
