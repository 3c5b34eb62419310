#!/usr/bin/env bash
# The shipped robot policy (issue 25): a blind flow policy with action chunks of C = 4, made in two stages,
# each run alone on the machine unless the note beside its figures says otherwise:
#   distill  DAgger with the flow-matching loss from the RFO teacher that observes the trunk's velocity
#            (models/quadruped_randomized.onnx) into the blind chunked student, in the hardware world
#            (config/train/quadruped_flow_distill.yaml; 1.5 M env steps)
#   last     the last stage from that one warm start, 3 seeds each, the same wall-clock (600 s): RFO
#            (config/train/quadruped_flow_rfo.yaml) and FPO (config/train/quadruped_flow_fpo.yaml)
#   robust   bench robust at 1.0 m/s, 32 episodes per set: the warm start (no last stage), each last-stage
#            run, and the default it replaces (models/quadruped_ppo.onnx), sampled; the first and the last
#            also at zero noise
#   export   the chosen run (LAST, default distill_s0: neither last stage beat it) to models/quadruped.onnx,
#            with its config, summary and curve
# Run folders land in docs/results/flow_default/; a finished run is skipped, so a killed script resumes.
# Stages: `bash scripts/flow_default.sh [distill] [last] [robust] [export]`; LAST=rfo_s1 picks another run.
default_stages="distill last robust export"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/flow_default
warm=$out/distill_s0/checkpoints/last.pt
mkdir -p $out

train() {  # train NAME CONFIG [--set ...]: one run folder, skipped when finished
  local name=$1 config=$2
  shift 2
  [[ -f $out/$name/summary.json ]] && return
  $py -m rfo_ros.train --config "$config" --out "$out/$name" --no-progress "$@" 2>&1 | tee "$out/$name.log"
}

if want distill; then
  train distill_s0 config/train/quadruped_flow_distill.yaml
fi

if want last; then
  for seed in 0 1 2; do
    for algo in rfo fpo; do
      train ${algo}_s$seed config/train/quadruped_flow_$algo.yaml --set run.seed=$seed --set run.init_from=$warm
    done
  done
fi

if want robust; then
  policies=$warm labels=no_last_stage
  for run in rfo_s0 rfo_s1 rfo_s2 fpo_s0 fpo_s1 fpo_s2; do
    policies+=,$out/$run/checkpoints/last.pt labels+=,$run
  done
  policies+=,models/quadruped_ppo.onnx labels+=,ppo_default_before
  $py -m rfo_ros.bench robust --policies $policies --labels $labels --episodes 32 --command 1.0 \
    --json $out/robust.json | tee $out/robust.md
  # Zero noise (the flow's mean path, the Gaussian's mean) for the shipped policy and the one it replaces.
  $py -m rfo_ros.bench robust --policies $warm,models/quadruped_ppo.onnx --labels no_last_stage,ppo_default_before \
    --episodes 32 --command 1.0 --zero-noise --json $out/robust_zero_noise.json | tee $out/robust_zero_noise.md
fi

if want export; then
  run=$out/${LAST:-distill_s0}
  $py -m rfo_ros.export $run/checkpoints/last.pt -o models/quadruped.onnx
  for f in config.yaml:train.yaml summary.json:summary.json learning_curve.png:learning_curve.png; do
    cp "$run/${f%%:*}" "models/quadruped.${f##*:}"
  done
fi
