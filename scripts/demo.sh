#!/usr/bin/env bash
# The main demo: the closed-loop quadruped (sim node + policy node), headless, 20 s, with a report.
# Extra arguments go to the bringup, e.g. `bash scripts/demo.sh --duration 60`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_venv.sh
exec .venv/bin/python -m rfo_ros.bringup quadruped --headless --duration 20 --report "$@"
