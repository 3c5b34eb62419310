#!/usr/bin/env bash
# Re-runs every result committed under docs/results/ (the exact commands; ~1.5 h on 2 cores).
# Each grid cell is a normal training run folder under docs/results/<task>/<algo>_s<seed>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
py=.venv/bin/python

# RFO vs SHAC vs FPO vs PPO at equal env steps, 3 seeds, one simulation thread per run, two runs at a time.
$py -m rfo_ros.bench learn --tasks quadruped,soft_quadruped --algos rfo,shac,fpo,ppo --seeds 3 \
    --steps 400000 --jobs 2 --threads 1 --out docs/results
# PPO and FPO given 10x the env steps (they step without Jacobians, so this is similar wall time).
$py -m rfo_ros.bench learn --tasks quadruped --algos ppo,fpo --seeds 3 --steps 4000000 --jobs 2 --threads 1 \
    --out docs/results --tag _10x

# Ablations on cart-pole (1 seed each): regularisers, chunk length, flow steps.
abl() { $py -m rfo_ros.bench learn --tasks cartpole --algos rfo --seeds 1 --steps 600000 --jobs 1 --threads 2 \
    --out docs/results/ablations --tag "$1" "${@:2}"; }
abl _full
abl _naive --set diff.lambda_stab=0 --set diff.lambda_expl=0
abl _no_stab --set diff.lambda_stab=0
abl _no_expl --set diff.lambda_expl=0
abl _C4 --set policy.chunk=4
abl _K2 --set policy.flow_steps=2
abl _K8 --set policy.flow_steps=8

# Visual input: depth image + proprioception, RFO vs SHAC.
$py -m rfo_ros.bench learn --tasks quadruped_depth --algos rfo,shac --seeds 1 --steps 300000 --jobs 2 --threads 1 \
    --out docs/results
