# What every measurement script (race.sh, hardware.sh) starts with; sourced after the script sets
# `default_stages`: the repository root as the working directory, .venv/ set up, `py` its Python, and the
# stages to run (the script's arguments, else every default one), which `want NAME` asks about.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
py=.venv/bin/python
stages=("${@:-$default_stages}")
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
