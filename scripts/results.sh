#!/usr/bin/env bash
# Re-runs every result committed under docs/results/ with the exact commands used (~6 h on 2 cores).
# Each grid cell is a normal training run folder: docs/results/<task>/<algo><tag>_s<seed>/ (summary.json,
# metrics.csv, learning_curve.png; checkpoints and TensorBoard logs are not committed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_venv.sh
py=.venv/bin/python

# 1. RFO vs SHAC vs FPO vs PPO at equal env steps, 3 seeds; one simulation thread per run, two at a time.
$py -m rfo_ros.bench learn --tasks quadruped,soft_quadruped --algos rfo,shac,fpo,ppo --seeds 3 \
    --steps 200000 --jobs 2 --threads 1 --out docs/results
$py -m rfo_ros.bench learn --tasks cartpole --algos rfo,shac,fpo,ppo --seeds 3 \
    --steps 1000000 --jobs 2 --threads 1 --out docs/results

# 2. Ablations of RFO on cart-pole, 3 seeds each (two chains of runs side by side).
abl() { $py -m rfo_ros.bench learn --tasks cartpole --algos rfo --seeds 3 --steps 600000 --jobs 1 --threads 1 \
    --out docs/results/ablations --tag "$1" "${@:2}"; }
( abl _full; abl _naive --set diff.lambda_stab=0 --set diff.lambda_expl=0
  abl _no_stab --set diff.lambda_stab=0; abl _no_expl --set diff.lambda_expl=0 ) &
( abl _C4 --set policy.chunk=4; abl _K2 --set policy.flow_steps=2; abl _K8 --set policy.flow_steps=8 ) &
wait

# 3. Visual input: 16x16 ray-cast depth image + proprioception, RFO vs SHAC.
$py -m rfo_ros.bench learn --tasks quadruped_depth --algos rfo,shac --seeds 1 --steps 200000 --jobs 2 --threads 1 \
    --out docs/results

# 4. PPO with 10x the env steps (it steps without Jacobians; FPO at 10x did not fit in the session).
$py -m rfo_ros.bench learn --tasks quadruped --algos ppo --seeds 3 --steps 2000000 --jobs 2 --threads 1 \
    --out docs/results --tag _10x

# 5. The shipped policy: 20 minutes of RFO on the quadruped (alone on the machine), evaluated at fixed
#    commands, exported; then SHAC with the same settings for 20 minutes, and a second RFO seed.
out=docs/results/quadruped_20min/quadruped
$py -m rfo_ros.train --config config/train/quadruped_rfo.yaml --out $out/rfo_s0
for vx in 1.0 1.1 1.5; do
  $py -m rfo_ros.evaluate $out/rfo_s0/checkpoints/last.pt --command "$vx" 0 0 --episodes 32 \
      > $out/rfo_s0/eval_command_$vx.json
done
$py -m rfo_ros.export $out/rfo_s0/checkpoints/last.pt -o models/quadruped_nominal.onnx
cp $out/rfo_s0/config.yaml models/quadruped_nominal.train.yaml
cp $out/rfo_s0/summary.json models/quadruped_nominal.summary.json
cp $out/rfo_s0/learning_curve.png models/quadruped_nominal.learning_curve.png
$py -m rfo_ros.train --config config/train/quadruped_shac.yaml --out $out/shac_s0
$py -m rfo_ros.train --config config/train/quadruped_rfo.yaml --set run.seed=1 --out $out/rfo_s1
$py -m rfo_ros.bench learn --tasks quadruped --algos rfo,shac --seeds 2 --steps 2800000 \
    --out docs/results/quadruped_20min --report-only

# 6. The linear learning-rate schedule for RFO and SHAC on the other worlds (configs unchanged there).
$py -m rfo_ros.bench learn --tasks cartpole --algos rfo,shac --seeds 3 --steps 1000000 --jobs 2 --threads 1 \
    --out docs/results/lr_schedule --tag _linear --set diff.lr_schedule=linear
$py -m rfo_ros.bench learn --tasks soft_quadruped --algos rfo,shac --seeds 3 --steps 200000 --jobs 2 \
    --threads 1 --out docs/results/lr_schedule --tag _linear --set diff.lr_schedule=linear

# 7. Training throughput, Jacobians inline vs overlapped (alone on the machine).
$py -m rfo_ros.bench train --iterations 20

# 8. Sample reuse and SAPO: every method 10 minutes of wall-clock on the quadruped, 3 seeds, two runs
#    at a time with one simulation thread each (two chains side by side, every run paired the same
#    way). Short-horizon methods' linear lr schedules end at 1.2 M steps; PPO/FPO may use 6 M.
q10() { $py -m rfo_ros.bench learn --tasks quadruped --max-wall 600 --jobs 1 --threads 1 \
    --out docs/results/quadruped_10min "$@"; }
( q10 --algos ppo,fpo --seeds 3 --steps 6000000
  q10 --algos shac --seeds 3 --steps 1200000
  true ) &  # M = 2, 4 and 8: section 12
( q10 --algos sapo,rfo --seeds 3 --steps 1200000
  q10 --algos rfo --seeds 3 --steps 1200000 --tag _M1 --set diff.reuse_epochs=1
  q10 --algos rfo --seeds 3 --steps 1200000 --tag _no_stab --set diff.lambda_stab=0 --set diff.reuse_lambda_stab=0
  q10 --algos rfo --seeds 1 --steps 1200000 --tag _no_expl --set diff.lambda_expl=0 ) &
wait
# The probes that chose the RFO settings (1 seed each; tags as in docs/results/quadruped_10min):
#   _n64 (64 envs), _n64_noclip (64 envs, no adjoint clip), _n64_M5 (64 envs, M = 5), _n16 (16 envs): e.g.
#   q10 --algos rfo --seeds 1 --steps 1200000 --tag _n64 --set env.num_envs=64

# 9. Robots as data: the hexapod (config/robots/hexapod.yaml) trained from the quadruped's own settings
#    (legged_rfo.yaml, 20 minutes, alone on the machine), evaluated at a fixed command, exported, and run
#    in the ROS closed loop for 20 s.
out=docs/results/robots/hexapod_rfo_s0
$py -m rfo_ros.train --config config/train/legged_rfo.yaml --set env.robot=config/robots/hexapod.yaml --out $out
$py -m rfo_ros.evaluate $out/checkpoints/last.pt --command 0.75 0 0 --episodes 16 > $out/eval_command_0.75.json
$py -m rfo_ros.export $out/checkpoints/last.pt -o models/hexapod.onnx
cp $out/config.yaml models/hexapod.train.yaml
cp $out/summary.json models/hexapod.summary.json
cp $out/learning_curve.png models/hexapod.learning_curve.png
$py -m rfo_ros.bringup --robot config/robots/hexapod.yaml --model models/hexapod.onnx --headless --duration 20 \
    --report --strip $out/bringup_strip.png | tee $out/bringup_report.txt

# 10. Robustness: a randomised RFO quadruped (30 minutes, alone on the machine) against the shipped nominal
#     policy, 32 episodes per perturbation set at 1.0 m/s (alone on the machine).
out=docs/results/robust
$py -m rfo_ros.train --config config/train/quadruped_rfo_randomized.yaml --out $out/rfo_randomized_s0
$py -m rfo_ros.export $out/rfo_randomized_s0/checkpoints/last.pt -o models/quadruped_randomized.onnx
# ... and the same without odometry (proprioception and IMU only), 30 minutes alone.
$py -m rfo_ros.train --config config/train/quadruped_rfo_randomized.yaml --set env.base_lin_vel=false \
    --out $out/rfo_randomized_nolinvel_s0
$py -m rfo_ros.export $out/rfo_randomized_nolinvel_s0/checkpoints/last.pt -o models/quadruped_randomized_no_odom.onnx
for f in config.yaml:train.yaml summary.json:summary.json learning_curve.png:learning_curve.png; do
  cp "$out/rfo_randomized_nolinvel_s0/${f%%:*}" "models/quadruped_randomized_no_odom.${f##*:}"
done
$py -m rfo_ros.bench robust --episodes 32 --command 1.0 --json $out/robust.json \
    --policies models/quadruped_nominal.onnx,models/quadruped_randomized.onnx,models/quadruped_randomized_no_odom.onnx \
    --labels nominal,randomised,randomised_no_odom | tee $out/robust.md

# 11. The robot side (alone on the machine): the policy node beside a bare rclpy echo, a 10-minute soak,
#     and chunk execution on a C = 8 RFO policy trained for 10 minutes.
$py -m rfo_ros.bench latency --model models/quadruped_nominal.onnx | tee docs/results/nodes/latency.txt
$py -m rfo_ros.bench soak --minutes 10 --model models/quadruped_nominal.onnx | tee docs/results/nodes/soak.md
out=docs/results/chunks
$py -m rfo_ros.train --config config/train/quadruped_rfo.yaml --set policy.chunk=8 --set run.max_wall_time_s=600 \
    --out $out/rfo_c8_s0
$py -m rfo_ros.export $out/rfo_c8_s0/checkpoints/last.pt -o $out/rfo_c8_inpainting.onnx --inpainting
for r in 4 8 1; do
  $py -m rfo_ros.bench chunks --model $out/rfo_c8_inpainting.onnx --seconds 20 --replan-every $r \
      | tee $out/chunks_replan$r.txt
done
# 10b. The same with training pushes of 1.0 m/s every 3 s (not shipped; worse): edit push_velocity and
#      push_interval_s in the config, then
# $py -m rfo_ros.train --config config/train/quadruped_rfo_randomized.yaml --out docs/results/robust/rfo_randomized_v2_s0
# $py -m rfo_ros.export docs/results/robust/rfo_randomized_v2_s0/checkpoints/last.pt -o /tmp/quadruped_randomized_v2.onnx
# $py -m rfo_ros.bench robust --policies /tmp/quadruped_randomized_v2.onnx --labels randomised_v2 --episodes 32 \
#     --command 1.0 --json docs/results/robust/robust_v2.json | tee docs/results/robust/robust_v2.md

# 12. Sample reuse, continued (issue 8): every method with the quadruped's tuned configs on the other worlds,
#     3 seeds, two runs at a time with one simulation thread each (two chains side by side: every run
#     shared the machine with exactly one other run). Short-horizon methods' step budgets are where their
#     linear lr schedules end (about what they reach in the time); PPO's constant lr runs to the wall-clock.
s6() { $py -m rfo_ros.bench learn --tasks soft_quadruped --config-task quadruped --max-wall 360 --jobs 1 \
    --threads 1 --out docs/results/soft_quadruped_6min "$@"; }
( s6 --algos rfo,sapo --seeds 3 --steps 400000 ) &
( s6 --algos shac --seeds 3 --steps 400000; s6 --algos ppo --seeds 3 --steps 6000000 ) &
wait
p6() { $py -m rfo_ros.bench learn --tasks push --config-task quadruped --max-wall 360 --jobs 1 --threads 1 \
    --out docs/results/push_6min "$@"; }
( p6 --algos rfo,shac --seeds 3 --steps 1000000 ) &
( p6 --algos ppo --seeds 3 --steps 6000000   # then the M = 2 / M = 8 reuse cells on the quadruped
  q10 --algos rfo --seeds 1 --steps 1200000 --tag _M2 --set diff.reuse_epochs=2
  q10 --algos rfo --seeds 1 --steps 1200000 --tag _M8 --set diff.reuse_epochs=8 ) &
wait
# M = 4, and a second M = 2 seed, paired with each other.
( q10 --algos rfo --seeds 1 --steps 1200000 --tag _M4 --set diff.reuse_epochs=4 ) &
( q10 --algos rfo --seeds 2 --steps 1200000 --tag _M2 --set diff.reuse_epochs=2 ) &
wait
# PPO on push for 15 minutes (it shared the machine with the test suite for part of it: env steps count).
$py -m rfo_ros.train --config config/train/quadruped_ppo.yaml --set env.task=push --set env.threads=1 \
    --set run.total_env_steps=20000000 --set run.max_wall_time_s=900 --out docs/results/push_6min/push_long/ppo_15min_s0
# RFO with the quadruped's reuse settings on cart-pole (two runs at a time, the third alone).
$py -m rfo_ros.bench learn --tasks cartpole --algos rfo --seeds 3 --steps 1000000 --jobs 2 --threads 1 \
    --out docs/results --tag _reuse --set diff.reuse_epochs=3 --set diff.reuse_minibatches=2 \
    --set diff.reuse_lr_scale=0.5 --set diff.reuse_max_latent_shift=0.1 --set diff.reuse_lambda_stab=1.0 \
    --set diff.adjoint_clip_quantile=0.9

# 13. Scale (issue 11): bench scale alone on the machine, then the learning-curve check, 1 process x 32
#     envs against 2 torchrun ranks x 16 envs, 3 seeds each, two runs at a time: seeds 0-1 of a layout
#     together, then both layouts' seed 2 together (env steps compare; the wall-clock does not: a 2-rank
#     run's neighbour has two processes too).
$py -m rfo_ros.bench scale --seconds 45 --rounds 2
sl() { $py -m rfo_ros.bench learn --tasks quadruped --algos rfo --steps 1000000 --jobs 2 --threads 1 \
    --out docs/results/scale_learning --at-steps 250000,500000,750000,950000 "$@"; }
sl --seeds 2 --tag _1proc_32envs --set env.num_envs=32
sl --seeds 2 --tag _2ranks_16envs --nproc 2 --set env.num_envs=16
( sl --seeds 3 --tag _1proc_32envs --set env.num_envs=32 ) &
( sl --seeds 3 --tag _2ranks_16envs --nproc 2 --set env.num_envs=16 ) &
wait
# 14. The reuse ablation completed to 3 seeds for M = 2 / 4 / 8 and 2 for no L_expl (paired, as section 8).
( q10 --algos rfo --seeds 3 --steps 1200000 --tag _M4 --set diff.reuse_epochs=4
  q10 --algos rfo --seeds 3 --steps 1200000 --tag _M2 --set diff.reuse_epochs=2 ) &
( q10 --algos rfo --seeds 3 --steps 1200000 --tag _M8 --set diff.reuse_epochs=8
  q10 --algos rfo --seeds 2 --steps 1200000 --tag _no_expl --set diff.lambda_expl=0 ) &
wait
# 15. The third seed without L_expl (paired with the first C = 8 run below), and C = 8 RFO policies
#     trained with the action-rate term (env.action_rate; rfo_ros/envs/shaping.py) for chunk execution,
#     one simulation thread each: w = 0.2 for 900 s beside the no-L_expl seed; w = 0.02 and 0.05 for
#     1200 s side by side; w = 0.1 for 1200 s (mostly alone). Then the chunk benches, alone.
out=docs/results/chunks
c8() { $py -m rfo_ros.train --config config/train/quadruped_rfo.yaml --set policy.chunk=8 --set env.threads=1 "$@"; }
( q10 --algos rfo --seeds 3 --steps 1200000 --tag _no_expl --set diff.lambda_expl=0 ) &
( c8 --set env.action_rate=0.2 --set run.max_wall_time_s=900 --out $out/rfo_c8_ar_s0 ) &
wait
( c8 --set env.action_rate=0.02 --set run.max_wall_time_s=1200 --out $out/rfo_c8_ar02_s0 ) &
( c8 --set env.action_rate=0.05 --set run.max_wall_time_s=1200 --out $out/rfo_c8_ar05_s0 ) &
wait
c8 --set env.action_rate=0.1 --set run.max_wall_time_s=1200 --out $out/rfo_c8_ar10_s0
for w in 05 10; do
  $py -m rfo_ros.export $out/rfo_c8_ar${w}_s0/checkpoints/last.pt -o $out/rfo_c8_ar${w}_inpainting.onnx --inpainting
  for r in 8 4 1; do
    $py -m rfo_ros.bench chunks --model $out/rfo_c8_ar${w}_inpainting.onnx --seconds 20 --replan-every $r \
        | tee $out/chunks_ar${w}_replan$r.txt
  done
done
for r in 8 4 1; do  # the w = 0 policy of section 11 again, now with the switch columns
  $py -m rfo_ros.bench chunks --model $out/rfo_c8_inpainting.onnx --seconds 20 --replan-every $r | tee $out/chunks_replan$r.txt
done
for d in 0 2 4; do  # how much real-time execution should commit (w = 0.05, R = 4)
  $py -m rfo_ros.bench chunks --model $out/rfo_c8_ar05_inpainting.onnx --seconds 20 --replan-every 4 --committed-steps $d
done

# 15. Issue 10, continued: three more 30-minute randomised runs, each alone on the machine (a slower AVX2
#     host: ~750 env steps/s against ~940 for section 10's runs), then one robustness bench of every policy
#     (alone), with the flow's noise sampled and at zero.
out=docs/results/robust
#   a push curriculum at test strength and beyond: 1.0 m/s every 2 s, reached after 250 s of simulated time
$py -m rfo_ros.train --config config/train/quadruped_rfo_randomized.yaml --out $out/rfo_randomized_pushramp_s0 \
    --set env.randomization.push_velocity=1.0 --set env.randomization.push_interval_s=2.0 \
    --set env.randomization.push_ramp_s=250.0
#   no odometry, with a 5-frame observation history
$py -m rfo_ros.train --config config/train/quadruped_rfo_randomized_no_odom.yaml --out $out/rfo_randomized_no_odom_h5_s0
#   stronger pushes at the training interval: 0.8 m/s every 4 s, reached after 150 s
$py -m rfo_ros.train --config config/train/quadruped_rfo_randomized.yaml --out $out/rfo_randomized_push08_s0 \
    --set env.randomization.push_velocity=0.8 --set env.randomization.push_ramp_s=150.0
for run in pushramp no_odom_h5 push08; do
  $py -m rfo_ros.export $out/rfo_randomized_${run}_s0/checkpoints/last.pt -o $out/quadruped_randomized_$run.onnx
done
policies=models/quadruped_nominal.onnx,models/quadruped_randomized.onnx,models/quadruped_randomized_no_odom.onnx
policies=$policies,$out/quadruped_randomized_pushramp.onnx,$out/quadruped_randomized_no_odom_h5.onnx
policies=$policies,$out/quadruped_randomized_push08.onnx
labels=nominal,randomised,randomised_no_odom,push_ramp_1.0,no_odom_history5,push_ramp_0.8
$py -m rfo_ros.bench robust --episodes 32 --command 1.0 --policies $policies --labels $labels \
    --json $out/robust_v3.json | tee $out/robust_v3.md
$py -m rfo_ros.bench robust --episodes 32 --command 1.0 --policies $policies --labels $labels --zero-noise \
    --json $out/robust_v3_zero_noise.json | tee $out/robust_v3_zero_noise.md

# 16. Issue 19: the cost of a differentiable step (fd and hybrid Jacobians), the race on the quadruped
#     (PPO, rsl_rl's PPO, RFO; 3 seeds), push with and without the gradient model, the quadruped with a
#     gradient model on its feet, and an fd-vs-hybrid training-throughput pair; every run alone.
bash scripts/race.sh

# 17. The hardware policy, its robustness, and what the privileged critic and the history buy (issue 20).
bash scripts/hardware.sh
