#!/usr/bin/env bash
# Issue 28, continued: RFO with a gait prior (rfo_ros/envs/gait.py) on the robot that steps finer than its
# policy, and the quadruped race with it. Stages, each run alone on the machine unless it says "paired":
#   rfo:    RFO on config/robots/go1_fine_gait.yaml, 20 minutes, seed 0 (config/train/go1_fine_gait_rfo.yaml);
#   ppo:    PPO on the same robot with the same prior, 20 minutes, seed 0;
#   seeds:  RFO seeds 1 and 2 for 20 minutes, paired (both at once, each with one simulation thread);
#   race:   the quadruped with the prior (config/robots/go1_gait.yaml), 3 seeds each, every run alone:
#           PPO 1.5 M env steps (300 s cap), RFO 1 M (600 s cap), time to the return 2100.
# Run folders go to docs/results/gait/. Stages: `bash scripts/gait.sh [rfo] [ppo] [seeds] [race]`.
default_stages="rfo ppo seeds race"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/gait
mkdir -p $out/go1_fine_gait
# The config's settings when these runs were made (it now reuses for the first 200 k env steps, at 0.001).
as_made=(--set diff.actor_lr=0.002 --set diff.reuse_until_env_steps=null)

if want rfo; then
  $py -m rfo_ros.train --config config/train/go1_fine_gait_rfo.yaml "${as_made[@]}" --out $out/go1_fine_gait/rfo_s0
fi

if want ppo; then
  $py -m rfo_ros.train --config config/train/go1_fine_gait_ppo.yaml --out $out/go1_fine_gait/ppo_s0
fi

if want seeds; then
  for seed in 1 2; do
    $py -m rfo_ros.train --config config/train/go1_fine_gait_rfo.yaml "${as_made[@]}" --set run.seed=$seed --set env.threads=1 \
      --out $out/go1_fine_gait/rfo_paired_s$seed &
  done
  wait
fi

if want race; then
  at=250000,500000,750000,1000000
  race() { $py -m rfo_ros.bench learn --tasks legged --seeds 3 --jobs 1 --at-steps $at --out $out/race "$@" \
    --set env.robot=config/robots/go1_gait.yaml --config-task quadruped --tag _go1_gait; }
  race --algos ppo --steps 1500000 --max-wall 300
  race --algos rfo --steps 1000000 --max-wall 600 --set env.jacobians=hybrid
fi
