#!/usr/bin/env bash
# Creates or updates .venv/ at the repository root. Idempotent: a re-run with unchanged
# requirements returns in well under a second (a stamp file records what was installed).
#   - no NVIDIA GPU: torch==2.13.0 (local CPU wheel) + onnxruntime (CPU)
#   - NVIDIA GPU:    CUDA torch + onnxruntime-gpu (never both onnxruntime packages)
#   - RFO_ROS_SYSTEM_ROS=1: skip the ros-jazzy PyPI wheels and use a sourced ROS 2 Jazzy instead
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavour=gpu
else
  flavour=cpu
fi
system_ros="${RFO_ROS_SYSTEM_ROS:-0}"
stamp_want="$(cat "$root"/requirements/*.txt "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)-$flavour-ros$system_ros"
stamp_file="$venv/.rfo_ros_stamp"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_want" ]]; then
  exit 0
fi

echo "[setup] creating $venv ($flavour, system ROS: $system_ros)"
if [[ "$system_ros" == 1 ]]; then
  # Let the venv see rclpy and the message packages of the sourced /opt/ros/jazzy.
  "$python_bin" -m venv --system-site-packages "$venv"
else
  "$python_bin" -m venv "$venv"
fi
pip_install() {
  # pip repeats "WARNING: Location '...' is ignored" for every configured find-links/index folder
  # that a machine lacks; drop those lines, keep every other message and pip's exit status.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v -E "^WARNING: Location '.*' is ignored" >&2)
}
# onnxruntime and onnxruntime-gpu share one import package: a venv first made for the other flavour
# must lose the other one before this one goes in, or neither works reliably.
if [[ "$flavour" == gpu ]]; then other_ort=onnxruntime; else other_ort=onnxruntime-gpu; fi
if "$venv/bin/python" -m pip show "$other_ort" >/dev/null 2>&1; then
  echo "[setup] removing $other_ort (this machine uses the $flavour flavour)"
  "$venv/bin/python" -m pip uninstall --yes --quiet "$other_ort"
  "$venv/bin/python" -m pip uninstall --yes --quiet onnxruntime onnxruntime-gpu >/dev/null 2>&1 || true
fi
if [[ "$flavour" == gpu ]]; then
  pip_install torch==2.13.0 onnxruntime-gpu==1.31.1
else
  # The pinned version resolves to the CPU wheel shipped on this machine kind; an unpinned
  # torch would pull several GB of CUDA libraries.
  pip_install torch==2.13.0 onnxruntime==1.31.1
fi
pip_install -r "$root/requirements/base.txt" -r "$root/requirements/dev.txt"
if [[ "$system_ros" != 1 ]]; then
  pip_install -r "$root/requirements/ros.txt"
fi
echo "$stamp_want" > "$stamp_file"
echo "[setup] done"
