#!/usr/bin/env bash
# The hardware policy (issue 20), each stage's runs alone on the machine unless it says otherwise:
#   train    the shipped default, config/train/quadruped_hardware_ppo.yaml (20 min), exported to
#            models/quadruped.onnx; the nominal-world model it replaces stays as models/quadruped_nominal.onnx
#   robust   bench robust: the new default and the three earlier models, 32 episodes per set at 1.0 m/s,
#            sampled and zero noise
#   ablation what the privileged critic and the history buy (PPO, the hardware world, 3 seeds, 1 M env steps
#            each; two runs at a time, one simulation thread each, every run paired the same way)
#   rfo      what the privileged critic changes for RFO, whose critic only bootstraps the window's end
#            (a blind actor in the nominal world, 3 seeds, 300 k env steps, paired as above)
# Every run is a normal run folder under docs/results/hardware/; bench learn skips a finished one, so a
# killed script resumes where it stopped. Stages: `bash scripts/hardware.sh [train] [robust] [ablation] [rfo]`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
py=.venv/bin/python
out=docs/results/hardware
mkdir -p $out
stages=("${@:-train robust ablation rfo}")
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }

if want train; then
  run=$out/default_s0
  if [[ ! -f $run/summary.json ]]; then
    $py -m rfo_ros.train --config config/train/quadruped_hardware_ppo.yaml --out $run --no-progress
  fi
  $py -m rfo_ros.export $run/checkpoints/last.pt -o models/quadruped.onnx
  cp $run/summary.json models/quadruped.summary.json
  cp $run/config.yaml models/quadruped.train.yaml
  cp $run/learning_curve.png models/quadruped.learning_curve.png
fi

if want robust; then
  policies=models/quadruped.onnx,models/quadruped_nominal.onnx,models/quadruped_randomized.onnx
  policies+=,models/quadruped_randomized_no_odom.onnx
  labels=hardware,nominal,randomized,randomized_no_odom
  for noise in "" "--zero-noise"; do
    name=robust${noise:+_zero_noise}
    $py -m rfo_ros.bench robust --policies $policies --labels $labels --episodes 32 --command 1.0 $noise \
      --json $out/$name.json | tee $out/$name.md
  done
fi

if want ablation; then
  ablate() { $py -m rfo_ros.bench learn --tasks quadruped --config-task quadruped_hardware --algos ppo \
    --seeds 3 --jobs 2 --threads 1 --steps 1000000 --at-steps 250000,500000,750000,1000000 \
    --out $out/ablation "$@"; }
  ablate --tag _full
  ablate --tag _no_privileged_critic --set 'env.critic_obs=[]'
  ablate --tag _no_history --set env.obs_history=1
fi

if want rfo; then
  rfo() { $py -m rfo_ros.bench learn --tasks quadruped --algos rfo --seeds 3 --jobs 2 --threads 1 \
    --steps 300000 --at-steps 100000,200000,300000 --out $out/rfo_critic --set env.base_lin_vel=false "$@"; }
  rfo --tag _blind_privileged_critic --set 'env.critic_obs=[base_lin_vel, base_height, clean_obs]'
  rfo --tag _blind
fi
