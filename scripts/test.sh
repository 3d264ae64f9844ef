#!/usr/bin/env bash
# Set up (if needed) and run the test suite:  bash scripts/test.sh [pytest args...]
# e.g.  bash scripts/test.sh -q -k msgs
# Exit code = pytest's; "no tests collected" (5) counts as failure.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
cd "$REPO"
# shellcheck disable=SC1091
source "$REPO/scripts/env.sh"
# a fresh DDS domain per run, so concurrent runs never see each other's topics
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 1 ))}"
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID FASTDDS_BUILTIN_TRANSPORTS=$FASTDDS_BUILTIN_TRANSPORTS FASTDDS_DEFAULT_PROFILES_FILE=$FASTDDS_DEFAULT_PROFILES_FILE ROS_LOG_DIR=$ROS_LOG_DIR"
echo "[test] python -m pytest src/qt_policy/test $*"
rc=0
python -m pytest src/qt_policy/test "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] FAIL: pytest collected no tests (exit 5)" >&2
  exit 1
fi
exit "$rc"
