#!/usr/bin/env bash
# Set up (if needed) and run the closed-loop demo: the shipped model drives the simulated arm over
# ROS 2 while every episode is recorded as a bag:  bash scripts/demo.sh [--episodes-per-task N] [--tasks ...]
# (python -m qt_policy.dev.demo --help lists the options; the core self check: python -m qt_policy.selfcheck)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/scripts/setup.sh"
cd "$REPO"
# shellcheck disable=SC1091
source "$REPO/scripts/env.sh"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( RANDOM % 100 + 1 ))}"
echo "[demo] ROS_DOMAIN_ID=$ROS_DOMAIN_ID; python -m qt_policy.dev.demo $*"
exec python -m qt_policy.dev.demo "$@"
