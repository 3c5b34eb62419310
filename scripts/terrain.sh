#!/usr/bin/env bash
# The perceptive policy (issue 26): a depth-seeing flow student taught by a teacher that reads the course's
# true heights, on the obstacle course (sim/quadruped_terrain.xml), each stage alone on the machine unless
# the note beside its figures says otherwise:
#   teacher   PPO with the course's heights ahead and the trunk's velocity, its blocks growing with a
#             curriculum (quadruped_terrain_teacher_ppo.yaml), exported to teacher_levels/teacher.onnx
#             (teacher/ holds the earlier run without the curriculum, which learnt to stop before the blocks)
#   teacher_more  the same run resumed to 24 M env steps (its 8 M summary kept as summary_8M.json)
#   student   DAgger with the flow-matching loss into the 16x16-depth flow student, C = 4
#             (quadruped_terrain_distill.yaml)
#   blind     the same distillation into a student without the image (env.task legged_terrain)
#   evaluate  32 episodes on the course at its own commands (0.5-1.0 m/s), sampled and zero noise: the
#             student, the blind student, the teacher, and the shipped blind default (models/quadruped.onnx)
#   export    the student to models/quadruped_perceptive.onnx, with its config, summary and curve
# Run folders land in docs/results/terrain/; a finished run is skipped, so a killed script resumes.
# Stages: `bash scripts/terrain.sh [teacher] [teacher_more] [student] [blind] [evaluate] [export]`
default_stages="teacher teacher_more student blind evaluate"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/terrain
mkdir -p $out

teacher=teacher_levels
if want teacher; then
  train $teacher config/train/quadruped_terrain_teacher_ppo.yaml
  [[ -f $out/$teacher/teacher.onnx ]] ||
    $py -m rfo_ros.export $out/$teacher/checkpoints/last.pt -o $out/$teacher/teacher.onnx
fi

if want teacher_more; then  # the teacher resumed to 24 M env steps (50 minutes at most); its 8 M summary kept
  [[ -f $out/$teacher/summary_8M.json ]] || cp $out/$teacher/summary.json $out/$teacher/summary_8M.json
  $py -m rfo_ros.train --out $out/$teacher --resume --no-progress --set run.total_env_steps=24000000 \
    --set run.max_wall_time_s=3000 2>&1 | tee -a $out/$teacher.log
  $py -m rfo_ros.export $out/$teacher/checkpoints/last.pt -o $out/$teacher/teacher.onnx
fi

if want student; then
  train student config/train/quadruped_terrain_distill.yaml --set distill.teacher=$out/$teacher/teacher.onnx
fi

if want blind; then
  train blind config/train/quadruped_terrain_distill.yaml --set distill.teacher=$out/$teacher/teacher.onnx \
    --set env.task=legged_terrain
fi

if want evaluate; then
  evaluate() {  # evaluate NAME POLICY [--task T]
    local name=$1 policy=$2
    shift 2
    [[ -f $policy ]] || return 0
    $py -m rfo_ros.evaluate "$policy" --episodes 32 "$@" | tee $out/eval_$name.json
  }
  evaluate student $out/student/checkpoints/last.pt
  evaluate blind $out/blind/checkpoints/last.pt
  evaluate teacher $out/$teacher/checkpoints/last.pt
  evaluate shipped_default models/quadruped.onnx --task legged_terrain
fi

if want export; then
  $py -m rfo_ros.export $out/student/checkpoints/last.pt -o models/quadruped_perceptive.onnx
  for f in config.yaml:train.yaml summary.json:summary.json learning_curve.png:learning_curve.png; do
    cp "$out/student/${f%%:*}" "models/quadruped_perceptive.${f##*:}"
  done
fi
