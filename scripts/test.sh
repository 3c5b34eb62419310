#!/usr/bin/env bash
# The project's test command: set up .venv/, lint, then run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k packaging`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_venv.sh
# Offscreen rendering (camera tests) through Debian's EGL/Mesa; MuJoCo reads this at import.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
echo "[test] ruff check ."
.venv/bin/ruff check .
echo "[test] pytest tests $*"
.venv/bin/python -m pytest tests -q "$@"
