#!/usr/bin/env bash
# The shipped robot policy (issue 25): a blind flow policy with action chunks of C = 4. Two routes, each
# stage run alone on the machine unless the note beside its figures says otherwise.
# Route 2 (the trot prior; stages teacher, student, last2, robust2, last2_lr, last2_no_rough):
#   teacher  PPO with odometry on go1_trot (a trot prior, legged_gym's tracking width) in the hardware world
#            (config/train/quadruped_teacher_ppo.yaml), exported to trot_teacher/teacher.onnx
#   student  DAgger with the flow-matching loss from that teacher into the blind chunked student on go1_trot
#            (config/train/quadruped_flow_distill.yaml with the trot robot and teacher): the teacher drives
#            a share of the envs falling 1 -> 0 over 300 k steps, then the student drives at half the lr
#   last2    the last stage from the student, 3 seeds, the same wall-clock (LAST_S, default 300 s): RFO and
#            FPO, each seed's two runs paired (one simulation thread each)
#   last2_lr RFO's last stage at a lower actor learning rate (2e-4), seeds 0 and 1 paired, and bench robust
#   last2_no_rough  RFO's last stage without the rough ground (pushes kept), seeds 0 and 1 paired, bench robust
#   last2_anchor  RFO's last stage anchored to the teacher (diff.lambda_teacher, ANCHOR, default 1.0; the
#            teacher labels RFO's own windows), seeds 0 and 1 paired, then seed 2 paired with seed 0 at
#            ANCHOR2 (default 3.0), and bench robust on all four
#   last1_anchor  the same on route 1 (from its student, anchored to its RFO teacher with odometry,
#            models/quadruped_randomized.onnx), seeds 0 and 1 paired, and bench robust
#   last1_track  route 1's anchored last stage on go1_track (go1 with legged_gym's tracking width, a reward
#            that pays the command), lambda_teacher 1.0 and 0.3 (TRACK_LAMBDAS), seed 0 (TRACK_SEED), paired;
#            bench robust; TRACK_LR=0.001 the same at twice the actor's learning rate
#   last1_straight  the same at lr 1e-3, lambda 1, on go1_straight (go1_track with a narrower yaw-rate width:
#            the go1_track policies walked arcs), seeds 0 and 1 together
#   last1_compare  completes route 1's last-stage table from its student (300 s each, one thread each, two
#            runs at a time): anchored RFO seed 2 beside FPO seed 0, FPO seeds 1 and 2 together; then bench
#            robust sampled (student, anchored RFO seeds 0-2, FPO seeds 0-2) and at zero noise (student and
#            anchored RFO)
#   robust2  bench robust at 1.0 m/s, 32 episodes per set: the student (and its first distillation stage),
#            each last-stage run, the route-1 default, sampled; the students and route 1 at zero noise too
# Route 1 (stages distill, last, robust; the shipped default: distill last1_anchor export): the RFO teacher
#   with odometry (models/quadruped_randomized.onnx) distilled into the student on go1 (no prior) in two
#   stages (distill_s0, distill_more_s0), then RFO and FPO for 600 s from the first, and bench robust.
# export: the chosen run (LAST, default rfo_anchor1.0_s0: the shipped default, from last1_anchor) to
#   models/quadruped.onnx, with its config, summary, curve.
# Run folders land in docs/results/flow_default/; a finished run is skipped, so a killed script resumes.
# Stages: `bash scripts/flow_default.sh [teacher] [student] [last2] [last2_lr] [last2_no_rough] [last2_anchor] [last1_anchor] [last1_track] [last1_straight] [last1_compare] [robust2] [distill] [last] [robust] [export]`
default_stages="distill last1_anchor last1_compare export"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/flow_default
warm=$out/distill_s0/checkpoints/last.pt
mkdir -p $out

trot=(--set env.task=legged --set env.robot=config/robots/go1_trot.yaml)
student=$out/trot_distill_more_s0/checkpoints/last.pt

if want teacher; then
  train trot_teacher config/train/quadruped_teacher_ppo.yaml
  [[ -f $out/trot_teacher/teacher.onnx ]] ||
    $py -m rfo_ros.export $out/trot_teacher/checkpoints/last.pt -o $out/trot_teacher/teacher.onnx
fi

if want student; then
  teacher=(--set distill.teacher=$out/trot_teacher/teacher.onnx)
  train trot_distill_s0 config/train/quadruped_flow_distill.yaml "${trot[@]}" "${teacher[@]}"
  train trot_distill_more_s0 config/train/quadruped_flow_distill.yaml "${trot[@]}" "${teacher[@]}" \
    --set distill.teacher_share_steps=0 --set distill.lr=5e-4 \
    --set run.init_from=$out/trot_distill_s0/checkpoints/last.pt
fi

if want last2; then
  for seed in 0 1 2; do
    for algo in rfo fpo; do
      train trot_${algo}_s$seed config/train/quadruped_flow_$algo.yaml "${trot[@]}" --set run.seed=$seed \
        --set run.init_from=$student --set run.max_wall_time_s=${LAST_S:-300} --set env.threads=1 &
    done
    wait
  done
fi

if want last2_lr; then  # RFO's last stage at 2e-4 instead of 5e-4, seeds 0 and 1 paired, then bench robust
  for seed in 0 1; do
    train trot_rfo_lr2e-4_s$seed config/train/quadruped_flow_rfo.yaml "${trot[@]}" --set run.seed=$seed \
      --set run.init_from=$student --set run.max_wall_time_s=300 --set env.threads=1 --set diff.actor_lr=0.0002 &
  done
  wait
  runs=$out/trot_rfo_lr2e-4_s0/checkpoints/last.pt,$out/trot_rfo_lr2e-4_s1/checkpoints/last.pt
  $py -m rfo_ros.bench robust --policies $runs --labels trot_rfo_lr2e-4_s0,trot_rfo_lr2e-4_s1 --episodes 32 \
    --command 1.0 --json $out/robust2_rfo_lr2e-4.json | tee $out/robust2_rfo_lr2e-4.md
fi

if want last2_no_rough; then  # RFO's last stage without the rough ground (pushes kept), seeds 0-1 paired
  for seed in 0 1; do
    train trot_rfo_no_rough_s$seed config/train/quadruped_flow_rfo.yaml "${trot[@]}" --set run.seed=$seed \
      --set run.init_from=$student --set run.max_wall_time_s=300 --set env.threads=1 \
      --set env.randomization.rough_ground_m=null &
  done
  wait
  runs=$out/trot_rfo_no_rough_s0/checkpoints/last.pt,$out/trot_rfo_no_rough_s1/checkpoints/last.pt
  $py -m rfo_ros.bench robust --policies $runs --labels trot_rfo_no_rough_s0,trot_rfo_no_rough_s1 \
    --episodes 32 --command 1.0 --json $out/robust2_rfo_no_rough.json | tee $out/robust2_rfo_no_rough.md
fi

if want last2_anchor; then  # RFO's last stage with L_teacher towards the route-2 teacher
  anchor() {  # anchor NAME SEED LAMBDA: one 300 s run on one simulation thread
    train $1 config/train/quadruped_flow_rfo.yaml "${trot[@]}" --set run.seed=$2 --set run.init_from=$student \
      --set run.max_wall_time_s=300 --set env.threads=1 --set diff.lambda_teacher=$3 \
      --set distill.teacher=$out/trot_teacher/teacher.onnx
  }
  a1=${ANCHOR:-1.0} a2=${ANCHOR2:-3.0}
  anchor trot_rfo_anchor${a1}_s0 0 $a1 & anchor trot_rfo_anchor${a1}_s1 1 $a1 & wait
  anchor trot_rfo_anchor${a1}_s2 2 $a1 & anchor trot_rfo_anchor${a2}_s0 0 $a2 & wait
  runs="" labels=""
  for run in trot_rfo_anchor${a1}_s0 trot_rfo_anchor${a1}_s1 trot_rfo_anchor${a1}_s2 trot_rfo_anchor${a2}_s0; do
    runs+=${runs:+,}$out/$run/checkpoints/last.pt labels+=${labels:+,}$run
  done
  $py -m rfo_ros.bench robust --policies $runs --labels $labels --episodes 32 --command 1.0 \
    --json $out/robust2_rfo_anchor.json | tee $out/robust2_rfo_anchor.md
fi

if want last1_anchor; then  # route 1's student with L_teacher towards route 1's RFO teacher
  for seed in 0 1; do
    train rfo_anchor1.0_s$seed config/train/quadruped_flow_rfo.yaml --set run.seed=$seed \
      --set run.init_from=$out/distill_more_s0/checkpoints/last.pt --set run.max_wall_time_s=300 \
      --set env.threads=1 --set diff.lambda_teacher=1.0 --set distill.teacher=models/quadruped_randomized.onnx &
  done
  wait
  runs=$out/rfo_anchor1.0_s0/checkpoints/last.pt,$out/rfo_anchor1.0_s1/checkpoints/last.pt
  $py -m rfo_ros.bench robust --policies $runs --labels rfo_anchor1.0_s0,rfo_anchor1.0_s1 --episodes 32 \
    --command 1.0 --json $out/robust_rfo_anchor.json | tee $out/robust_rfo_anchor.md
fi

# anchored_last1 ROBOT SEED LR LAMBDA...: route 1's anchored last stage on config/robots/ROBOT.yaml, one
# 300 s run per LAMBDA at once (one simulation thread each), then bench robust on them
anchored_last1() {
  local robot=$1 seed=$2 lr=$3 runs="" labels="" lambda name
  shift 3
  local prefix=${robot#go1_}
  for lambda in "$@"; do
    name=${prefix}_rfo_anchor${lambda}${lr:+_lr$lr}_s$seed
    train $name config/train/quadruped_flow_rfo.yaml --set env.task=legged --set env.robot=config/robots/$robot.yaml \
      --set run.seed=$seed --set run.init_from=$out/distill_more_s0/checkpoints/last.pt \
      --set run.max_wall_time_s=300 --set env.threads=1 --set diff.lambda_teacher=$lambda \
      --set distill.teacher=models/quadruped_randomized.onnx ${lr:+--set diff.actor_lr=$lr} &
    runs+=${runs:+,}$out/$name/checkpoints/last.pt labels+=${labels:+,}$name
  done
  wait
  local table=robust_${prefix}${lr:+_lr$lr}_s${seed}_l$(IFS=_; echo "$*")
  $py -m rfo_ros.bench robust --policies $runs --labels $labels --episodes 32 --command 1.0 \
    --json $out/$table.json | tee $out/$table.md
}

if want last1_track; then  # route 1's anchored last stage in a world whose reward pays the command
  anchored_last1 go1_track ${TRACK_SEED:-0} "${TRACK_LR:-}" ${TRACK_LAMBDAS:-1.0 0.3}
fi

if want last1_straight; then  # the same at lr 1e-3 with a narrower yaw-rate width (go1_straight), seeds 0 and 1
  for seed in 0 1; do anchored_last1 go1_straight $seed 0.001 1.0 & done
  wait
fi

if want last1_compare; then
  from=(--set run.init_from=$out/distill_more_s0/checkpoints/last.pt --set run.max_wall_time_s=300 --set env.threads=1)
  fpo() { train fpo300_s$1 config/train/quadruped_flow_fpo.yaml --set run.seed=$1 "${from[@]}"; }
  train rfo_anchor1.0_s2 config/train/quadruped_flow_rfo.yaml --set run.seed=2 "${from[@]}" \
    --set diff.lambda_teacher=1.0 --set distill.teacher=models/quadruped_randomized.onnx &
  fpo 0 & wait
  fpo 1 & fpo 2 & wait
  runs=$out/distill_more_s0/checkpoints/last.pt labels=no_last_stage
  for run in rfo_anchor1.0_s0 rfo_anchor1.0_s1 rfo_anchor1.0_s2 fpo300_s0 fpo300_s1 fpo300_s2; do
    runs+=,$out/$run/checkpoints/last.pt labels+=,$run
  done
  $py -m rfo_ros.bench robust --policies $runs --labels $labels --episodes 32 --command 1.0 \
    --json $out/robust_last1.json | tee $out/robust_last1.md
  $py -m rfo_ros.bench robust --policies ${runs%%,$out/fpo300_s0*} --labels ${labels%%,fpo300_s0*} \
    --episodes 32 --command 1.0 --zero-noise --json $out/robust_last1_zero_noise.json | tee $out/robust_last1_zero_noise.md
fi

if want robust2; then
  policies=$student labels=trot_student
  for run in trot_distill_s0 trot_rfo_s0 trot_rfo_s1 trot_rfo_s2 trot_fpo_s0 trot_fpo_s1 trot_fpo_s2; do
    [[ -f $out/$run/checkpoints/last.pt ]] && policies+=,$out/$run/checkpoints/last.pt labels+=,$run
  done
  route1=$out/distill_more_s0/checkpoints/last.pt  # route 1's default, where its checkpoint is here
  zero=$student,$out/trot_distill_s0/checkpoints/last.pt zero_labels=trot_student,trot_distill_s0
  if [[ -f $route1 ]]; then
    policies+=,$route1 labels+=,route1_default zero+=,$route1 zero_labels+=,route1_default
  fi
  $py -m rfo_ros.bench robust --policies $policies --labels $labels --episodes 32 --command 1.0 \
    --json $out/robust2.json | tee $out/robust2.md
  $py -m rfo_ros.bench robust --policies $zero --labels $zero_labels --episodes 32 --command 1.0 --zero-noise \
    --json $out/robust2_zero_noise.json | tee $out/robust2_zero_noise.md
fi

if want distill; then  # the teacher drives a share falling 1 -> 0, then the student drives at half the lr
  train distill_s0 config/train/quadruped_flow_distill.yaml
  train distill_more_s0 config/train/quadruped_flow_distill.yaml --set distill.teacher_share_steps=0 \
    --set distill.lr=5e-4 --set run.init_from=$out/distill_s0/checkpoints/last.pt
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
  run=$out/${LAST:-rfo_anchor1.0_s0}
  $py -m rfo_ros.export $run/checkpoints/last.pt -o models/quadruped.onnx
  for f in config.yaml:train.yaml summary.json:summary.json learning_curve.png:learning_curve.png; do
    cp "$run/${f%%:*}" "models/quadruped.${f##*:}"
  done
fi
