"""Where the package's files are: the source checkout, the installed share/ folder, the shipped model.

One place for path discovery, so the nodes, the CLIs, the bag reader and the launch stand-in all
resolve `models/...`, `config/...` and `launch/...` the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "qt_policy"
DEFAULT_MODEL = "models/qt_metaworld"
#: the robot of checkpoints that carry no embodiment (trained before embodiment files): the simulated arm
DEFAULT_EMBODIMENT = "config/embodiments/metaworld_sawyer.yaml"


def repo_root() -> Path | None:
    """The source checkout this module lives in (QT_ROS_ROOT wins), or None when installed elsewhere."""
    env = os.environ.get("QT_ROS_ROOT")
    if env and Path(env).is_dir():
        return Path(env)
    # .../src/qt_policy/qt_policy/paths.py (build/ symlinks resolve to src/)
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "src" / PACKAGE).is_dir() else None


def package_share(package: str = PACKAGE) -> Path | None:
    """share/<package> of an installed package (the ament index), or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(package))
    except (PackageNotFoundError, ValueError, LookupError):
        return None


def source_share(package: str = PACKAGE) -> Path | None:
    """What share/<package> holds, in the source checkout: the repository root for qt_policy
    (launch/, config/, models/ live there), src/<package> for the others; None without a checkout."""
    root = repo_root()
    if root is None:
        return None
    if package == PACKAGE:
        return root
    return root / "src" / package if (root / "src" / package / "package.xml").is_file() else None


def resolve_data_path(path: str) -> Path:
    """A relative path (e.g. models/qt_metaworld) is looked up in the cwd, the package share dir, the repo."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute() or p.exists():
        return p
    for base in (package_share(), repo_root()):
        if base is not None and (base / p).exists():
            return base / p
    return p


def default_checkpoint() -> str:
    """The shipped model directory, absolute when it can be found; the relative path otherwise."""
    return str(resolve_data_path(DEFAULT_MODEL))
