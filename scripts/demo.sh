#!/usr/bin/env bash
# Set up (if needed) and run the end-to-end self check:  bash scripts/demo.sh [args...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
cd "$REPO"
# shellcheck disable=SC1091
source "$REPO/scripts/env.sh"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 1 ))}"
echo "[demo] ROS_DOMAIN_ID=$ROS_DOMAIN_ID; python -m qt_policy.selfcheck $*"
exec python -m qt_policy.selfcheck "$@"
