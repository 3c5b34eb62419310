#!/usr/bin/env bash
# Issue 19's measurements, each run alone on the machine, one after another (~75 min on 2 cores):
#   1. the cost of a differentiable step, fd and hybrid Jacobians side by side (bench sim);
#   2. the race on the quadruped, 3 seeds each: PPO (ours), PPO (rsl_rl), RFO (hybrid Jacobians);
#   3. push, 6 minutes each: RFO with the gradient model, PPO, RFO with the exact gradient;
#   4. the quadruped with a gradient model on the feet (RFO, hybrid);
#   5. RFO with fd Jacobians for 180 s, paired with the race's hybrid seed 0 (training throughput).
# Every run is a normal run folder under docs/results/race/; bench learn skips a finished one, so a
# killed script resumes where it stopped. Stages: `bash scripts/race.sh [bench] [race] [push] [feet] [fdpair]`.
default_stages="bench race push feet fdpair"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/race
mkdir -p $out
at=250000,500000,750000,1000000

if want bench; then
  $py -m rfo_ros.bench sim --task quadruped --envs 32 --horizon 16 --forward --repeats 5 --json \
    | tee $out/bench_sim.json
fi

if want race; then
  .venv/bin/pip install --quiet -r requirements/bench.txt  # rsl-rl-lib: the race only
  race() { $py -m rfo_ros.bench learn --tasks quadruped --seeds 3 --jobs 1 --at-steps $at --out $out "$@"; }
  race --algos ppo --steps 1500000       # PPO's lr is constant: a longer budget only shows more
  race --algos rsl_ppo --steps 1000000
  race --algos rfo --steps 1000000 --set env.jacobians=hybrid --tag _hybrid
fi

if want push; then
  push() { $py -m rfo_ros.bench learn --tasks push --config-task quadruped --seeds 1 --jobs 1 --max-wall 360 \
    --out $out "$@"; }
  push --algos rfo --steps 1000000 --tag _hybrid_gradient_model --set env.jacobians=hybrid \
    --set env.gradient_model.margin=0.05 --set env.gradient_model.timeconst_scale=4.0 \
    --set 'env.gradient_model.geoms=[fingertip]'
  push --algos ppo --steps 6000000
  push --algos rfo --steps 1000000 --tag _hybrid --set env.jacobians=hybrid
fi

if want feet; then
  $py -m rfo_ros.bench learn --tasks quadruped --algos rfo --seeds 1 --jobs 1 --at-steps $at --out $out \
    --steps 1000000 --tag _hybrid_gradient_model --set env.jacobians=hybrid \
    --set env.gradient_model.margin=0.01 --set env.gradient_model.timeconst_scale=2.0 \
    --set 'env.gradient_model.geoms=[FR_foot, FL_foot, RR_foot, RL_foot]'
fi

if want fdpair; then
  $py -m rfo_ros.train --config config/train/quadruped_rfo.yaml --set env.jacobians=fd \
    --set run.total_env_steps=1000000 --set run.max_wall_time_s=180 --set run.seed=0 --set run.eval_episodes=1 \
    --out $out/quadruped/rfo_fd_180s_s0
fi
