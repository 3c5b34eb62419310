# What every measurement script (race.sh, hardware.sh) starts with; sourced after the script sets
# `default_stages`: the repository root as the working directory, .venv/ set up, `py` its Python, and the
# stages to run (the script's arguments, else every default one), which `want NAME` asks about, and
# `train NAME CONFIG [--set ...]`: one run folder $out/NAME (the script sets `out`), skipped when finished.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
py=.venv/bin/python
stages=("${@:-$default_stages}")
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
train() {  # train NAME CONFIG [--set ...]: one run folder, skipped when finished
  local name=$1 config=$2
  shift 2
  [[ -f $out/$name/summary.json ]] && return
  $py -m rfo_ros.train --config "$config" --out "$out/$name" --no-progress "$@" 2>&1 | tee "$out/$name.log"
}
