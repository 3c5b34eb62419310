#!/usr/bin/env bash
# Issue 28's measurements (RFO on a robot that steps finer than its policy), each run alone on the machine,
# one after another (~55 min on 2 cores):
#   1. quality: the gradient twin's window gradient against the exact one (bench twin), on the fine-timestep
#      robot (fd and hybrid twins) and on the quadruped;
#   2. rfo: RFO with the gradient twin on config/robots/go1_fine.yaml, 20 minutes (config/train/go1_fine_rfo.yaml);
#   3. ppo: PPO on the same robot, 20 minutes;
#   4. exact: RFO with the exact Jacobians of each control step (whole-step finite differences), 180 s;
#   5. chain: the same 180 s on the commit before this work (a chain of per-substep mjd_transitionFD per
#      control step), in a temporary git worktree with the fine robot's two files copied in.
# Run folders go to docs/results/twin/. Stages: `bash scripts/twin.sh [quality] [rfo] [ppo] [exact] [chain]`.
default_stages="quality rfo ppo exact chain"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/twin
mkdir -p $out/go1_fine

if want quality; then
  $py -m rfo_ros.bench twin --envs 16 --horizon 32 | tee $out/go1_fine_fd.txt
  $py -m rfo_ros.bench twin --envs 16 --horizon 32 --jacobians hybrid \
    --twins 1:implicitfast:pyramidal 2:implicitfast:pyramidal 4:implicitfast:pyramidal | tee $out/go1_fine_hybrid.txt
  $py -m rfo_ros.bench twin --robot go1 --envs 16 --horizon 32 --twins 1:euler 2 4:implicitfast:elliptic \
    | tee $out/go1.txt
fi

if want rfo; then
  $py -m rfo_ros.train --config config/train/go1_fine_rfo.yaml --out $out/go1_fine/rfo_twin_s0
fi

if want ppo; then
  $py -m rfo_ros.train --config config/train/go1_fine_ppo.yaml --out $out/go1_fine/ppo_s0
fi

short="--set run.max_wall_time_s=180 --set run.eval_episodes=4"
if want exact; then
  $py -m rfo_ros.train --config config/train/go1_fine_rfo.yaml --set env.gradient_model.steps=0 \
    --set env.gradient_model.integrator=null --set env.gradient_model.cone=null $short --out $out/go1_fine/rfo_exact_180s
fi

if want chain; then
  before=$(git log --format=%H -1 --grep '^Issue 28: a control step is one differentiable node')^
  tree=$(mktemp -d)/before
  git worktree add --detach "$tree" "$before"
  cp sim/go1_fine.xml "$tree/sim/"
  cp config/robots/go1_fine.yaml "$tree/config/robots/"
  (cd "$tree" && PYTHONPATH="$tree" "$OLDPWD/$py" -m rfo_ros.train --config config/train/legged_rfo.yaml \
    --set env.robot=config/robots/go1_fine.yaml $short --out "$OLDPWD/$out/go1_fine/rfo_chain_180s")
  git worktree remove --force "$tree"
fi
