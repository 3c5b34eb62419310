"""The privileged critic (asymmetric actor-critic): ``env.critic_obs`` reaches the critic of every
algorithm and never the actor or the exported model; its values are the env's own; runs resume exactly."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import torch
from training_settings import TINY_TRAINING, interrupt_at

from rfo_ros.config import ConfigError, load_config
from rfo_ros.envs import make_task
from rfo_ros.envs.legged_obs import PRIVILEGED_FIELDS
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.randomization import Randomization
from rfo_ros.robot import RobotError, read_description

FIELDS = ["base_lin_vel", "physics", "latency", "push"]
PRIVILEGED_SIZE = 3 + 12 + 1 + 3
WORLD = Randomization(
    friction=(0.4, 1.25), added_mass_kg=(-1.0, 3.0), com_offset_m=0.05, motor_strength=(0.8, 1.2),
    latency_steps=(0, 2), push_interval_s=0.05, push_velocity=0.5,
)  # fmt: skip
ALGOS = ["rfo", "shac", "sapo", "ppo", "fpo", "rsl_ppo"]


def _overrides(algo: str, steps: int = 64) -> list[str]:
    return [*TINY_TRAINING, "env.task=quadruped", "env.num_envs=4", "env.base_lin_vel=false",
            f"env.critic_obs=[{', '.join(FIELDS)}]", "env.randomization.latency_steps=[0, 2]",
            "env.randomization.friction=[0.5, 1.0]", "env.randomization.push_interval_s=0.05",
            f"algo={algo}", f"run.total_env_steps={steps}", "run.eval_episodes=1", "run.checkpoint_every=1",
            "onpolicy.rollout_steps=8", "critic.iterations=2", "rsl.num_steps_per_env=8",
            "rsl.actor_hidden_dims=[32]", "rsl.critic_hidden_dims=[32]"]  # fmt: skip


def _needs(algo: str) -> None:
    if algo == "rsl_ppo" and importlib.util.find_spec("rsl_rl") is None:
        pytest.skip("rsl_rl is optional (requirements/bench.txt)")


def _first_layer_inputs(module: torch.nn.Module) -> int:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Linear)).in_features


@pytest.mark.parametrize("algo", ALGOS)
def test_the_critic_group_reaches_the_critic_and_never_the_actor(tmp_path, algo):
    """Every algorithm's value network reads the actor's 45 blind values plus the privileged ones; the
    actor reads the 45 alone; the critic's normaliser is its own and it learnt the privileged values."""
    _needs(algo)
    from rfo_ros.runner import Runner

    runner = Runner(load_config(None, _overrides(algo)), tmp_path / algo, progress=False)
    assert runner.actor.obs_dim == 45 and runner.env.obs_dim == 45
    assert runner.env.critic_obs_dim == 45 + PRIVILEGED_SIZE
    value_net = runner.algo.ppo.critic if algo == "rsl_ppo" else runner.algo.critic.critic
    assert _first_layer_inputs(value_net) == 45 + PRIVILEGED_SIZE
    assert runner.actor.policy.features.proprio_dim == 45
    learner = runner.algo.critic_learner if algo == "rsl_ppo" else runner.algo.critic
    assert learner.own_normalizer and learner.normalizer is not runner.actor.normalizer
    runner.train()
    # The critic's normaliser saw the privileged values: the latency column's mean is a drawn delay.
    latency_mean = float(learner.normalizer.mean[45 + 3 + 12])
    assert 0.0 < latency_mean <= 2.0
    assert runner.actor.normalizer.mean.shape == (45,)


@pytest.mark.parametrize("algo", ["rfo", "ppo"])
def test_the_exported_model_carries_the_actors_inputs_alone(tmp_path, algo):
    from rfo_ros.export import export_onnx
    from rfo_ros.runner import Runner
    from rfo_ros.runtime import load_metadata

    runner = Runner(load_config(None, _overrides(algo, steps=32)), tmp_path / "run", progress=False)
    runner.write_config()
    runner.train()
    export_onnx(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "p.onnx", zero_noise=True)
    meta = load_metadata(tmp_path / "p.onnx")
    assert meta.obs_dim == 45
    assert "base_lin_vel" not in meta.obs_layout.names


def test_privileged_values_are_the_envs_drawn_physics_delay_and_pushes():
    task = make_task("quadruped")
    env = VecEnv(task, 6, seed=3, threads=1, randomization=WORLD, critic_obs=["physics", "latency", "push"])
    trunk = task.model.body(task.robot.description.trunk).id
    actuators = task.robot.actuator_ids
    obs = env.reset()
    pushed = False
    for _ in range(12):
        critic_obs = env.critic_view(obs)
        privileged = critic_obs[:, env.obs_dim :].double().numpy()
        np.testing.assert_array_equal(critic_obs[:, : env.obs_dim], obs)
        for i, model in enumerate(env.perturb.models):
            friction, added_mass, com = privileged[i, 0], privileged[i, 1], privileged[i, 2:5]
            np.testing.assert_allclose(friction, model.geom_friction[0, 0], rtol=1e-6)
            added = model.body_mass[trunk] - task.model.body_mass[trunk]
            np.testing.assert_allclose(added_mass, added, atol=1e-5)
            np.testing.assert_allclose(com, model.body_ipos[trunk] - task.model.body_ipos[trunk], atol=1e-6)
            strength = model.actuator_forcerange[actuators, 1] / task.model.actuator_forcerange[actuators, 1]
            np.testing.assert_allclose(privileged[i, 6], strength, rtol=1e-6)
            assert privileged[i, 7:11].tolist() == [1.0, 1.0, 1.0, 1.0]  # kp, kd, damping, armature: nominal
        np.testing.assert_array_equal(privileged[:, 12], env.perturb.delay)
        res = env.step(torch.zeros(6, task.action_dim))
        push = res.final_critic_obs[:, env.obs_dim + 13 :].double()
        just_pushed = env.perturb._push_clock == 0  # the clock restarts at a push
        impulse, phase = push[:, :2], push[:, 2]
        assert (impulse.abs() <= 0.5 + 1e-6).all() and ((phase >= 0) & (phase < 1)).all()
        assert (phase[torch.from_numpy(just_pushed)] == 0).all()
        pushed |= bool(impulse[torch.from_numpy(just_pushed)].abs().sum() > 0)
        obs = res.obs
    assert pushed


def test_the_base_velocity_field_is_the_trunks_and_carries_the_gradient():
    """The differentiable methods' bootstrap reads it: d(privileged velocity)/d(action) flows."""
    task = make_task("quadruped", base_lin_vel=False)
    env = VecEnv(task, 2, seed=0, threads=1, critic_obs=["base_lin_vel"])
    env.reset()
    action = torch.zeros(2, task.action_dim, requires_grad=True)
    res = env.step(action)
    velocity = res.final_critic_obs[:, env.obs_dim :]
    expected = 2.0 * task.forward_speed(env.state).float()
    torch.testing.assert_close(velocity[:, 0].detach(), expected.detach())
    (grad,) = torch.autograd.grad(velocity.sum(), action)
    assert grad.abs().sum() > 0


def test_a_run_with_a_critic_group_resumes_exactly(tmp_path):
    from rfo_ros.runner import Runner

    def runner(name: str) -> Runner:
        r = Runner(load_config(None, _overrides("rfo", steps=4 * 8 * 4)), tmp_path / name, progress=False)
        r.write_config()
        return r

    straight = runner("straight")
    straight.train()
    interrupt_at(runner("interrupted"), 2)
    resumed = runner("interrupted")
    resumed.resume()
    resumed.train()
    for a, b in ((straight.actor, resumed.actor), (straight.algo.critic.critic, resumed.algo.critic.critic),
                 (straight.algo.critic.normalizer, resumed.algo.critic.normalizer)):  # fmt: skip
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.critic_obs=[odometry]", "unknown privileged fields ['odometry']"),
        ("env.critic_obs=[physics, physics]", "named twice: ['physics']"),
        ("env.critic_obs=physics", "a list of names, got 'physics'"),
        ("env.critic_obs=[1]", "a list of names, got (1,)"),
    ],
)
def test_bad_critic_fields_are_refused_with_the_valid_ones(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(None, [override])
    assert "env.critic_obs" in str(err.value)
    # Every valid field is named, not only the one the override happened to use.
    missing = [name for name in PRIVILEGED_FIELDS if name not in str(err.value)]
    assert not missing, f"{missing} not named in: {err.value}"


def test_a_robot_file_with_an_unknown_critic_field_is_refused():
    import yaml

    from rfo_ros.robot import robot_file

    tree = yaml.safe_load(robot_file("go1").read_text())
    tree["critic_obs"] = ["friction"]
    with pytest.raises((RobotError, ValueError), match="unknown privileged fields"):
        read_description(tree)


def test_the_robot_files_group_is_the_default_and_the_config_overrides_it(tmp_path):
    import yaml

    from rfo_ros.robot import robot_file
    from rfo_ros.runner import Runner

    tree = yaml.safe_load(robot_file("go1").read_text())
    tree["critic_obs"] = ["base_lin_vel"]
    path = tmp_path / "go1_privileged.yaml"
    path.write_text(yaml.safe_dump(tree))
    base = [*TINY_TRAINING, "env.task=legged", f"env.robot={path}", "run.total_env_steps=8"]
    assert Runner(load_config(None, base), tmp_path / "a", progress=False).env.critic_obs_dim == 48 + 3
    overridden = Runner(load_config(None, [*base, "env.critic_obs=[]"]), tmp_path / "b", progress=False)
    assert overridden.env.critic_obs_dim == 48 and not overridden.algo.critic.own_normalizer


def test_the_validated_names_are_the_fields_the_env_reads():
    from rfo_ros.envs.privileged import FIELDS

    assert tuple(FIELDS) == PRIVILEGED_FIELDS


def test_privileged_fields_need_a_legged_task(tmp_path):
    from rfo_ros.runner import Runner

    cfg = load_config(None, [*TINY_TRAINING, "env.task=cartpole", "env.critic_obs=[physics]"])
    misplaced = "'physics' is a legged robot's privileged value; task Cartpole"
    with pytest.raises(ValueError, match=misplaced) as err:
        Runner(cfg, tmp_path / "c", progress=False)
    assert all(name in str(err.value) for name in PRIVILEGED_FIELDS), str(err.value)
