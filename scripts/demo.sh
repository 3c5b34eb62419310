#!/usr/bin/env bash
# The main demo: the closed-loop quadruped (sim node + policy node), headless, 20 s, with a report, an
# image strip and an MP4 (runs/demo/strip.png, runs/demo/demo.mp4; the report says where they are).
# Extra arguments go to the bringup, e.g. `bash scripts/demo.sh --duration 60`; the obstacle course, with a
# perceptive model seeing the sim's depth camera (the report adds crossings and the camera's rate/latency):
# `bash scripts/demo.sh --terrain --model models/quadruped_perceptive.onnx`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_venv.sh
# Offscreen rendering of the strip and the video through EGL/Mesa (MuJoCo reads MUJOCO_GL at import).
export MUJOCO_GL="${MUJOCO_GL:-egl}"
mkdir -p runs/demo
exec .venv/bin/python -m rfo_ros.bringup quadruped --headless --duration 20 --report --strip runs/demo/strip.png \
    --video runs/demo/demo.mp4 "$@"
