#!/usr/bin/env bash
# The GPU check in one command (python -m rfo_ros.bench gpu): runs with the machine's own python3, no
# venv, from the source tree; what rfo_ros lacks there comes from --wheels DIR (offline). Writes one JSON
# report (default runs/gpu_check/report.json). Options go through unchanged:
#   bash scripts/gpu_check.sh [--wheels DIR] [--out PATH] [--dry-run]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python_bin" -m rfo_ros.bench gpu "$@"
