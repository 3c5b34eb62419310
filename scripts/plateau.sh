#!/usr/bin/env bash
# Issue 28, RFO's plateau and its iteration's profile. Stages, every run alone on the machine:
#   lr:      the quadruped race with the gait prior (config/robots/go1_gait.yaml), RFO at half the actor
#            learning rate (diff.actor_lr 0.001), 3 seeds, 1 M env steps, 600 s cap;
#   huber:   the same, seed 1, with the critic's Huber loss (critic.huber_delta 10);
#   tau:     the same as lr with a slower target critic (critic.target_tau 0.2 for 0.8), 3 seeds;
#   short:   the same as tau with the learning-rate schedule (linear to 10 %) compressed into 400 k env steps,
#            where the runs end: the returns climb fastest early and rise again only as the rate falls;
#   barrier: the same as short with the differentiable fall barrier in RFO's window (diff.lambda_fall 2);
#   expl:    the same as short with a quarter of the exploration weight (diff.lambda_expl 0.05 for 0.2);
#   noreuse: the same as short without sample reuse (diff.reuse_epochs 1: plain back-propagation);
#   noreuse_alone: the same runs again, each alone (the returns per env step repeat bit for bit; the
#            wall-clock is the race's);
#   noreuse500k: noreuse with the schedule (and the runs) over 500 k env steps, each alone;
#   n64h16:  noreuse500k with 64 envs and a 16-step window (the same 1,024 samples per update; torch's per-call
#            overhead spread over twice the envs), each alone;
#   reuse50k, reuse100k, reuse150k, reuse200k: noreuse500k with the race's sample reuse (3 epochs) for the first
#            50 k / 100 k / 150 k / 200 k env steps only (diff.reuse_until_env_steps), each alone;
#   n16:     reuse150k with 16 envs: twice the actor updates per env step (bench train's loop promised
#            16 envs 4,051-4,126 env steps/s, counted in 32 envs' steps, a bug since fixed: in training it
#            ran 2,070), alone; stopped during seed 1 (docs/results);
#   n64:     reuse150k (the race's RFO) with 64 envs and the same 32-step window: twice the samples per actor
#            update, half the updates per env step, and torch's per-call cost spread over twice the envs;
#            RACE_SEEDS seeds (default 3), each alone; seed 0 only, stopped at 0.38 M env steps (docs/results);
#   noreuse_lr2e-3: noreuse500k at twice the actor learning rate (diff.actor_lr 0.002, falling linearly to 10 %):
#            plain BPTT does not stall where reuse does, but starts slower; a larger step instead of the
#            reuse epochs' extra steps, each alone;
#   reuse150k_stab02: reuse150k with the reuse epochs' stability weight at the plain steps' (diff.reuse_lambda_stab
#            0.2 for 1.0): while reuse runs, its L_stab falls twice as fast as without reuse, and the plateau
#            follows; each alone;
#   reuse150k_here5: reuse150k again on the host of reuse150k_stab02 (RFO's returns per env step did not
#            repeat bit for bit from the last session's host): the same-host control of reuse150k_stab02
#            (seeds 0 and 2 shared the CPU with the test suite or a CI run for part of their time);
#   ppo_here3: PPO as in race_here with a 480 s cap, each alone: the race's other side on a host that ran the
#            iteration ~2.5x slower than race_here's (2026-12-07, fifth session);
#   race_stab02: the race again on the host of 2026-12-07's sixth session, seed by seed in turn, each run alone:
#            RFO with reuse for the first 300 k env steps at the reuse L_stab 0.2 (with L_stab 1.0, reuse's
#            plateau set the switch-off at 150 k; tag _reuse300k_stab02), RFO as go1_gait_rfo.yaml (the
#            same-host control, tag _reuse150k_stab02_here6), both capped at 400 s, then PPO with a 360 s cap
#            (tag _go1_gait_here4); RACE_SEEDS seeds (default 3; 5 were run);
#   race_here7: the race after two speed-ups of the iteration (the hybrid Jacobians' batched maths on the
#            background core; every algorithm's update on run.update_threads, default the simulation's
#            threads), seed by seed in turn, each alone: RFO as go1_gait_rfo.yaml (400 s cap, tag
#            _reuse150k_stab02_here7), PPO as in race_stab02 (360 s cap, tag _go1_gait_here7);
#   race_here8: race_here7 again after the reward and the trunk's rotations became one autograd node each
#            (tags _reuse150k_stab02_here8 and _go1_gait_here8);
#   flow2_here8: race_here8's RFO with a 2-step flow (policy.flow_steps 2 instead of 4: half the actor's
#            integration, forward and backward), 400 s cap, RACE_SEEDS seeds (default 3), each alone;
#   reuse300k_here7: race_here7's RFO with reuse for the first 300 k env steps (as race_stab02's first stage; the
#            update threads made reuse cheaper), 340 s cap, RACE_SEEDS seeds (default 3), each alone;
#   race_here: the race after the iteration's speed-ups (commit 2097382), each run alone: RFO as reuse150k
#            (tag _reuse150k_here), then PPO as in ppo_here with a 120 s cap (tag _go1_gait_here2);
#   ppo_here: PPO as in ppo, 180 s cap, each alone: the race's other side on this session's host;
#   height:  the same as lr with the trunk's height in the critic's observation (env.critic_obs [base_height]),
#            3 seeds;
#   ppo:     PPO on the same world, 3 seeds, 1.5 M env steps, 300 s cap (the race's other side, this host);
#   fine:    RFO on go1_fine with the gait prior at actor_lr 0.001, 20 minutes, seed 0;
#   fine_alone: the same, seed 1 (FINE_SEED), alone;
#   fine_noreuse: the same without sample reuse (diff.reuse_epochs 1), seeds FINE_SEEDS (default "1 2"), each alone;
#   fine_reuse_until: fine_noreuse with the sample reuse of the config for the first 400 k env steps only
#            (diff.reuse_until_env_steps), seeds FINE_SEEDS (default "1 2"), each alone;
#   fine_reuse200k: the same with reuse for the first 200 k env steps (after reuse's fast start the training
#            reward sits flat, longer while reuse lasts, on both robots: docs/results), seeds FINE_SEEDS, each alone;
#   seeds:   the same, seeds 1 and 2, paired (both at once, each with one simulation thread);
#   fine_stab_paired: go1_fine_gait_rfo.yaml (reuse for the first 200 k env steps) with the reuse epochs' L_stab at
#            1.0 (the config) and at 0.2 (the race's cure for its plateau), seed FINE_SEED (default 1), both at
#            once with one simulation thread each, FINE_WALL seconds (default 2100; 1800 was run): per env step only;
#   profile: RFO's iteration before and after a change: the commit BEFORE (default 4e0f0eb, a git worktree in
#            a temporary folder) against the working tree, 120 k env steps each, alternating twice.
# Run folders go to docs/results/plateau/. Stages: `bash scripts/plateau.sh [lr] [huber] [tau] [short] [barrier] [expl] [noreuse] [noreuse_alone] [noreuse500k] [n64h16] [reuse50k] [reuse100k] [reuse150k] [reuse200k] [n16] [n64] [noreuse_lr2e-3] [reuse150k_stab02] [reuse150k_here5] [ppo_here3] [race_stab02] [race_here7] [race_here8] [flow2_here8] [reuse300k_here7] [race_here] [ppo_here] [height] [ppo] [fine] [fine_alone] [fine_noreuse] [fine_reuse_until] [fine_reuse200k] [fine_stab_paired] [seeds] [profile]`.
default_stages="lr huber tau height ppo fine seeds profile"
source "$(dirname "${BASH_SOURCE[0]}")/measure.sh"
out=docs/results/plateau
at=250000,500000,750000,1000000
race() { $py -m rfo_ros.bench learn --tasks legged --seeds 3 --jobs 1 --at-steps $at --out $out "$@" \
  --set env.robot=config/robots/go1_gait.yaml --config-task quadruped; }

if want lr; then
  race --algos rfo --steps 1000000 --max-wall 600 --set env.jacobians=hybrid --set diff.actor_lr=0.001 --tag _lr1e-3
fi

if want huber; then
  $py -m rfo_ros.train --no-progress --config config/train/quadruped_rfo.yaml --out $out/legged/rfo_lr1e-3_huber10_s1 \
    --set env.task=legged --set algo=rfo --set run.seed=1 --set run.total_env_steps=1000000 \
    --set run.max_wall_time_s=600 --set env.robot=config/robots/go1_gait.yaml --set env.jacobians=hybrid \
    --set diff.actor_lr=0.001 --set critic.huber_delta=10
fi

if want tau; then
  race --algos rfo --steps 1000000 --max-wall 600 --set env.jacobians=hybrid --set diff.actor_lr=0.001 \
    --set critic.target_tau=0.2 --tag _lr1e-3_tau02
fi

# The tau settings with the learning-rate schedule in 400 k env steps; each stage adds its change and tag.
short400k() { race --algos rfo --steps 400000 --max-wall 600 --set env.jacobians=hybrid --set diff.actor_lr=0.001 \
  --set critic.target_tau=0.2 "$@"; }
want short && short400k --tag _lr1e-3_tau02_400k
want barrier && short400k --set diff.lambda_fall=2.0 --tag _lr1e-3_tau02_400k_fall2
want expl && short400k --set diff.lambda_expl=0.05 --tag _lr1e-3_tau02_400k_expl005
want noreuse && short400k --set diff.reuse_epochs=1 --tag _lr1e-3_tau02_400k_noreuse
want noreuse_alone && short400k --set diff.reuse_epochs=1 --tag _lr1e-3_tau02_400k_noreuse_alone
want noreuse500k && race --algos rfo --steps 500000 --max-wall 600 --set env.jacobians=hybrid \
  --set diff.actor_lr=0.001 --set critic.target_tau=0.2 --set diff.reuse_epochs=1 --tag _lr1e-3_tau02_500k_noreuse
want n64h16 && race --algos rfo --steps 500000 --max-wall 600 --set env.jacobians=hybrid \
  --set diff.actor_lr=0.001 --set critic.target_tau=0.2 --set diff.reuse_epochs=1 --set env.num_envs=64 \
  --set diff.horizon=16 --tag _lr1e-3_tau02_500k_noreuse_n64h16
for until in 50 100 150 200; do
  want reuse${until}k && race --algos rfo --steps 500000 --max-wall 600 --set env.jacobians=hybrid \
    --set diff.actor_lr=0.001 --set critic.target_tau=0.2 --set diff.reuse_until_env_steps=${until}000 \
    --tag _lr1e-3_tau02_500k_reuse${until}k
done
# The race's RFO as reuse150k runs it (now go1_gait_rfo.yaml but for its reuse L_stab); each stage adds its
# change and tag.
reuse150k() { race --algos rfo --steps 500000 --max-wall 600 --set env.jacobians=hybrid --set diff.actor_lr=0.001 \
  --set critic.target_tau=0.2 --set diff.reuse_until_env_steps=150000 "$@"; }
want n16 && reuse150k --set env.num_envs=16 --tag _lr1e-3_tau02_500k_reuse150k_n16
want n64 && reuse150k --set env.num_envs=64 --seeds ${RACE_SEEDS:-3} --tag _lr1e-3_tau02_500k_reuse150k_n64
want noreuse_lr2e-3 && race --algos rfo --steps 500000 --max-wall 600 --set env.jacobians=hybrid \
  --set diff.actor_lr=0.002 --set critic.target_tau=0.2 --set diff.reuse_epochs=1 --tag _lr2e-3_tau02_500k_noreuse
# The race's RFO as go1_gait_rfo.yaml resolves it (reuse150k with the reuse epochs' L_stab at 0.2).
gait_rfo() { reuse150k --set diff.reuse_lambda_stab=0.2 "$@"; }
want reuse150k_stab02 && gait_rfo --tag _lr1e-3_tau02_500k_reuse150k_stab02
want reuse150k_here5 && reuse150k --tag _lr1e-3_tau02_500k_reuse150k_here5
want ppo_here3 && race --algos ppo --steps 1500000 --max-wall 480 --tag _go1_gait_here3
if want race_stab02; then  # seeds in turn: host drift over the hour falls on every side alike
  for n in $(seq 1 "${RACE_SEEDS:-3}"); do  # bench learn skips the seeds already run
    gait_rfo --set diff.reuse_until_env_steps=300000 --max-wall 400 --seeds $n --tag _lr1e-3_tau02_500k_reuse300k_stab02
    gait_rfo --max-wall 400 --seeds $n --tag _lr1e-3_tau02_500k_reuse150k_stab02_here6
    race --algos ppo --steps 1500000 --max-wall 360 --seeds $n --tag _go1_gait_here4
  done
fi
if want race_here7; then  # after the iteration's two speed-ups, both sides' updates on run.update_threads
  for n in $(seq 1 "${RACE_SEEDS:-3}"); do
    gait_rfo --max-wall 400 --seeds $n --tag _lr1e-3_tau02_500k_reuse150k_stab02_here7
    race --algos ppo --steps 1500000 --max-wall 360 --seeds $n --tag _go1_gait_here7
  done
fi
if want race_here8; then  # after the reward's and the rotations' closed-form gradients
  for n in $(seq 1 "${RACE_SEEDS:-3}"); do
    gait_rfo --max-wall 400 --seeds $n --tag _lr1e-3_tau02_500k_reuse150k_stab02_here8
    race --algos ppo --steps 1500000 --max-wall 360 --seeds $n --tag _go1_gait_here8
  done
fi
want flow2_here8 && gait_rfo --set policy.flow_steps=2 --max-wall 400 --seeds ${RACE_SEEDS:-3} \
  --tag _lr1e-3_tau02_500k_reuse150k_stab02_flow2_here8
want reuse300k_here7 && gait_rfo --set diff.reuse_until_env_steps=300000 --max-wall 340 --seeds ${RACE_SEEDS:-3} \
  --tag _lr1e-3_tau02_500k_reuse300k_stab02_here7
if want race_here; then
  reuse150k --tag _lr1e-3_tau02_500k_reuse150k_here
  race --algos ppo --steps 1500000 --max-wall 120 --tag _go1_gait_here2
fi

if want ppo_here; then
  race --algos ppo --steps 1500000 --max-wall 180 --tag _go1_gait_here
fi

if want height; then
  race --algos rfo --steps 1000000 --max-wall 600 --set env.jacobians=hybrid --set diff.actor_lr=0.001 \
    --set "env.critic_obs=[base_height]" --tag _lr1e-3_height
fi

if want ppo; then
  race --algos ppo --steps 1500000 --max-wall 300 --tag _go1_gait
fi

if want fine; then
  $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set diff.actor_lr=0.001 \
    --set diff.reuse_until_env_steps=null \
    --out $out/go1_fine_gait/rfo_lr1e-3_s0
fi

if want fine_alone; then  # seed 1 (FINE_SEED) of the fine stage, alone on the machine as seed 0 was
  $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set diff.actor_lr=0.001 \
    --set diff.reuse_until_env_steps=null \
    --set run.seed=${FINE_SEED:-1} --out $out/go1_fine_gait/rfo_lr1e-3_s${FINE_SEED:-1}
fi

if want fine_noreuse; then
  for seed in ${FINE_SEEDS:-1 2}; do
    $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set diff.actor_lr=0.001 \
      --set diff.reuse_epochs=1 --set run.seed=$seed --out $out/go1_fine_gait/rfo_lr1e-3_noreuse_s$seed
  done
fi

for until in 200 400; do
  stage=fine_reuse${until}k
  [ $until = 400 ] && stage=fine_reuse_until  # its first name
  if want $stage; then
    for seed in ${FINE_SEEDS:-1 2}; do
      $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set diff.actor_lr=0.001 \
        --set diff.reuse_until_env_steps=${until}000 --set run.seed=$seed \
        --out $out/go1_fine_gait/rfo_lr1e-3_reuse${until}k_s$seed
    done
  fi
done

if want fine_stab_paired; then  # both at once, one simulation thread each: compare per env step only
  seed=${FINE_SEED:-1}
  for stab in 1.0 0.2; do
    name=rfo_reuse200k_stab${stab}_paired_s$seed
    $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set run.seed=$seed \
      --set diff.reuse_lambda_stab=$stab --set env.threads=1 --set run.max_wall_time_s=${FINE_WALL:-2100} \
      --out $out/go1_fine_gait/$name > $out/go1_fine_gait/$name.log 2>&1 &
  done
  wait
fi

if want seeds; then
  for seed in 1 2; do
    $py -m rfo_ros.train --no-progress --config config/train/go1_fine_gait_rfo.yaml --set diff.actor_lr=0.001 \
      --set diff.reuse_until_env_steps=null \
      --set run.seed=$seed --set env.threads=1 --out $out/go1_fine_gait/rfo_lr1e-3_paired_s$seed &
  done
  wait
fi

if want profile; then
  before_dir=$(mktemp -d)
  git worktree add --detach "$before_dir/repo" "${BEFORE:-4e0f0eb}"
  args=(--no-progress --config config/train/quadruped_rfo.yaml --set env.task=legged --set algo=rfo
    --set run.seed=0 --set run.total_env_steps=120000 --set run.eval_episodes=2 --set run.checkpoint_every=1000
    --set env.robot=config/robots/go1_gait.yaml --set env.jacobians=hybrid)
  for rep in 1 2; do
    (cd "$before_dir/repo" && "$OLDPWD/$py" -m rfo_ros.train "${args[@]}" --out "$OLDPWD/$out/profile/before_$rep")
    $py -m rfo_ros.train "${args[@]}" --out $out/profile/after_$rep
  done
  git worktree remove --force "$before_dir/repo"
fi
