"""World perturbations: randomised physics per env, latency, sensor noise, pushes, and their config."""

from __future__ import annotations

import copy
import json

import mujoco
import numpy as np
import pytest
import torch

from rfo_ros.config import ConfigError, load_config
from rfo_ros.envs import make_task
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.randomization import LEGGED_SENSOR_NOISE, PERTURBATION_SETS, Randomization
from rfo_ros.sim.batched import FDConfig

PHYSICS = Randomization(
    friction=(0.4, 1.25),
    added_mass_kg=(-1.0, 3.0),
    com_offset_m=0.05,
    link_mass_scale=(0.8, 1.2),
    motor_strength=(0.8, 1.2),
    kp_scale=(0.8, 1.2),
    kd_scale=(0.8, 1.2),
    joint_damping_scale=(0.5, 1.5),
    armature_scale=(0.5, 1.5),
    frictionloss=(0.0, 0.2),
)


def env_of(randomization: Randomization, n: int = 6, seed: int = 0, fd: FDConfig | None = None) -> VecEnv:
    return VecEnv(make_task("quadruped"), n, seed=seed, threads=1, randomization=randomization, fd=fd)


def physics_of(model: mujoco.MjModel, env: VecEnv) -> dict[str, np.ndarray]:
    p = env.perturb
    act, dofs, t = p._actuators, p._dofs, p._trunk
    return {
        "friction": model.geom_friction[:, 0].copy(),
        "added_mass_kg": model.body_mass[t].copy(),
        "com_offset_m": model.body_ipos[t].copy(),
        "link_mass_scale": model.body_mass[p._links].copy(),
        "motor_strength": model.actuator_forcerange[act].copy(),
        "kp_scale": model.actuator_gainprm[act, 0].copy(),
        "kd_scale": model.actuator_biasprm[act, 2].copy(),
        "joint_damping_scale": model.dof_damping[dofs].copy(),
        "armature_scale": model.dof_armature[dofs].copy(),
        "frictionloss": model.dof_frictionloss[dofs].copy(),
    }


def test_every_randomised_quantity_differs_per_env_and_is_redrawn_at_reset():
    env = env_of(PHYSICS)
    nominal = physics_of(env.task.model, env)
    before = [physics_of(m, env) for m in env.sim.models]
    assert len({id(m) for m in env.sim.models}) == env.num_envs and env.task.model not in env.sim.models
    for name in nominal:
        values = [b[name] for b in before]
        assert not any(np.array_equal(v, nominal[name]) for v in values), f"{name}: an env kept the nominal"
        assert len({v.tobytes() for v in values}) == env.num_envs, f"{name}: envs share a value"
    # Position servo stays a servo: bias -kp everywhere.
    for m in env.sim.models:
        np.testing.assert_array_equal(m.actuator_biasprm[:, 1], -m.actuator_gainprm[:, 0])
    # Friction, added mass: within the configured ranges.
    for m in env.sim.models:
        assert 0.4 <= m.geom_friction[0, 0] <= 1.25
        assert -1.0 <= m.body_mass[1] - env.task.model.body_mass[1] <= 3.0
    mask = np.zeros(env.num_envs, dtype=bool)
    mask[[1, 4]] = True
    env._reset_where(mask)
    after = [physics_of(m, env) for m in env.sim.models]
    for i in range(env.num_envs):
        changed = [not np.array_equal(after[i][k], before[i][k]) for k in nominal]
        assert all(changed) if mask[i] else not any(changed), i
    env.close()


def test_jacobians_of_a_randomised_env_are_finite_differences_of_its_own_model():
    env = env_of(PHYSICS, n=3, fd=FDConfig(eps=1e-6, centered=True, overlap=False))
    rng = np.random.default_rng(0)
    qpos, qvel = env.state.qpos.numpy().copy(), env.state.qvel.numpy().copy()
    ctrl = env.task.action_to_ctrl(torch.from_numpy(rng.uniform(-1, 1, (3, 12)))).numpy()
    out = env.sim.step(qpos, qvel, np.zeros((3, 0)), ctrl, jacobians=True)
    A, B = out.jacobians.result()
    for i, model in enumerate(env.sim.models):
        for m, should_match in ((copy.copy(model), True), (env.task.model, False)):
            d = mujoco.MjData(m)
            d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[i], qvel[i], ctrl[i]
            d.qacc_warmstart[:] = 0
            a, b = np.zeros_like(A[i]), np.zeros_like(B[i])
            mujoco.mjd_transitionFD(m, d, 1e-6, True, a, b, None, None)
            close = np.allclose(a, A[i], atol=1e-6) and np.allclose(b, B[i], atol=1e-6)
            assert close == should_match, (i, should_match)
    env.close()


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_latency_delays_commands_by_exactly_n_steps_and_keeps_their_graph(delay):
    env = env_of(Randomization(latency_steps=(delay, delay)), n=2)
    rest = env.task.action_to_ctrl(torch.zeros(1, 12))
    commanded, applied = [], []
    actions = [torch.full((2, 12), 0.1 * (t + 1), requires_grad=True) for t in range(6)]
    for action in actions:
        ctrl = env.task.action_to_ctrl(action)
        commanded.append(ctrl)
        applied.append(env.perturb.actuate(ctrl))
    for t in range(6):
        expected = commanded[t - delay] if t >= delay else rest.expand(2, 12)
        torch.testing.assert_close(applied[t], expected, rtol=0, atol=0)
    applied[-1].sum().backward()  # the gradient reaches the action that was applied, not the last one
    assert actions[5 - delay].grad is not None and actions[5 - delay].grad.abs().sum() > 0
    if delay:  # the newest command has not acted yet: no gradient reaches it
        assert actions[-1].grad is None or not actions[-1].grad.any()
    env.close()


def test_latency_is_drawn_per_env_and_a_reset_env_restarts_from_rest():
    env = env_of(Randomization(latency_steps=(0, 3)), n=64)
    assert set(env.perturb.delay.tolist()) == {0, 1, 2, 3}
    env.close()
    env = env_of(Randomization(latency_steps=(2, 2)), n=2)
    rest = env.task.action_to_ctrl(torch.zeros(1, 12))[0]
    for _ in range(3):
        env.perturb.actuate(env.task.action_to_ctrl(torch.full((2, 12), 0.5)))
    env.perturb.reset(np.array([True, False]))
    applied = env.perturb.actuate(env.task.action_to_ctrl(torch.full((2, 12), -0.5)))
    torch.testing.assert_close(applied[0], rest)  # env 0's earlier commands went with its episode
    torch.testing.assert_close(applied[1], env.task.action_to_ctrl(torch.full((1, 12), 0.5))[0])
    env.close()


def test_sensor_noise_has_the_configured_statistics():
    env = env_of(Randomization(obs_noise=LEGGED_SENSOR_NOISE), n=4)
    task = env.task
    clean = task.observe(env.state, env.last_action).float()
    samples = torch.stack([env.observe() - clean for _ in range(4000)]).double()  # (S, N, D)
    layout = task.obs_layout
    for field in layout.fields:
        amplitude = LEGGED_SENSOR_NOISE.get(field.name, 0.0) * np.abs(np.array(field.scale))
        noise = samples[:, :, layout.slice(field.name)]
        # Uniform on [-a, a]: mean 0, standard deviation a / sqrt(3), never beyond a.
        assert noise.abs().max() <= torch.from_numpy(amplitude).max() + 1e-6
        if amplitude.max() == 0:
            assert noise.abs().max() < 1e-6, field.name
            continue
        std = noise.std(dim=(0, 1)).numpy()
        np.testing.assert_allclose(std, amplitude / np.sqrt(3), rtol=0.05, err_msg=field.name)
        assert abs(noise.mean().item()) < 0.02 * amplitude.max()
    env.close()


def test_pushes_change_the_trunk_velocity_at_their_interval():
    env = env_of(Randomization(push_interval_s=0.05, push_velocity=0.5), n=4)  # every 5 control steps
    state = env.state
    kicks = np.zeros(4, dtype=int)
    for _ in range(20):
        pushed = env.perturb.push(state)
        delta = (pushed.qvel - state.qvel).numpy()
        assert np.all(delta[:, 2:] == 0) and np.all(np.abs(delta[:, :2]) <= 0.5)
        kicks += np.abs(delta[:, :2]).sum(1) > 0
    assert np.all(kicks == 4)  # 20 steps / 5 per push, each env at its own phase
    env.close()


def test_push_ramp_grows_the_largest_push_linearly_to_its_full_size():
    # dt = 0.01 s: a push every control step, full strength after 10 steps (0.1 s) of simulated time.
    env = env_of(Randomization(push_interval_s=0.01, push_velocity=0.8, push_ramp_s=0.1), n=64)
    assert env.dt == pytest.approx(0.01)
    state = env.state
    for step in range(1, 16):
        pushed = env.perturb.push(state)
        largest = min(1.0, step / 10) * 0.8
        assert env.perturb.push_velocity == pytest.approx(largest)
        delta = np.abs((pushed.qvel - state.qvel).numpy()[:, :2])
        assert delta.max() <= largest + 1e-12
        assert delta.max() > 0.9 * largest  # 128 uniform draws: the largest is near the bound
    env.close()


def test_no_randomization_is_the_nominal_world_bit_for_bit():
    def rollout(randomization):
        env = env_of(randomization, n=3, seed=5)
        rewards = [env.step(torch.full((3, 12), 0.2)).reward for _ in range(5)]
        env.close()
        return torch.stack(rewards)

    torch.testing.assert_close(rollout(None), rollout(Randomization()), rtol=0, atol=0)
    assert not torch.equal(rollout(None), rollout(Randomization(friction=(0.3, 0.3), added_mass_kg=(3, 3))))


def test_randomised_env_resumes_exactly():
    timing = {"latency_steps": (0, 2), "push_interval_s": 0.05, "push_ramp_s": 0.3}
    r = Randomization(**{**PHYSICS.model_dump(), **timing})
    env = env_of(r, n=3, seed=2)
    for _ in range(7):
        env.step(torch.full((3, 12), 0.1))
    saved = env.state_dict()
    expected = [env.step(torch.full((3, 12), -0.1)).reward for _ in range(6)]
    other = env_of(r, n=3, seed=99)
    other.load_state_dict(saved)
    again = [other.step(torch.full((3, 12), -0.1)).reward for _ in range(6)]
    torch.testing.assert_close(torch.stack(again), torch.stack(expected), rtol=0, atol=0)
    for a, b in zip(env.sim.models, other.sim.models, strict=True):
        np.testing.assert_array_equal(a.body_mass, b.body_mass)


def test_named_perturbation_sets_change_what_they_name():
    assert set(PERTURBATION_SETS) >= {"nominal", "friction_low", "friction_high", "payload", "weak_motors",
                                      "latency", "sensor_noise", "pushes"}  # fmt: skip
    env = env_of(PERTURBATION_SETS["payload"], n=2)
    assert all(m.body_mass[1] == pytest.approx(env.task.model.body_mass[1] + 3.0) for m in env.sim.models)
    env.close()


BAD = {
    "env.randomization.friction=[1.2, 0.4]": "low > high",
    "env.randomization.motor_strength=[0.0, 1.0]": "must be > 0",
    "env.randomization.latency_steps=[-1, 2]": "must be >= 0",
    "env.randomization.latency_steps=[0.5, 2]": "valid integer",
    "env.randomization.push_interval_s=0": "greater than 0",
    "env.randomization.push_ramp_s=-1": "greater than 0",
    "env.randomization.push_ramp_s=100": "push_ramp_s needs push_interval_s",
    "env.randomization.obs_noise={joint_pos: -0.1}": "must be >= 0",
    "env.randomization.gravity=[9, 10]": "unknown key",
}


@pytest.mark.parametrize("override", sorted(BAD))
def test_bad_randomization_values_give_clear_errors(override):
    with pytest.raises(ConfigError, match=BAD[override]):
        load_config(None, ["env.task=quadruped", override])


def test_noise_on_an_unknown_field_and_randomising_a_task_without_a_robot_are_refused():
    with pytest.raises(ValueError, match=r"no observation fields \['base_height'\]; fields: base_lin_vel"):
        env_of(Randomization(obs_noise={"base_height": 0.1}))
    with pytest.raises(ValueError, match="needs a legged task"):
        VecEnv(make_task("cartpole"), 2, randomization=Randomization(friction=(0.5, 0.5)))


def test_observation_without_base_velocity_needs_no_odometry():
    task = make_task("quadruped", base_lin_vel=False)
    assert "base_lin_vel" not in task.obs_layout.names and task.obs_dim == 45
    assert make_task("legged", **task.options()).obs_dim == 45  # the option survives checkpoints


def test_rough_ground_heightfield_loads_runs_and_differs_per_env():
    env = env_of(Randomization(rough_ground_m=0.05), n=3, fd=FDConfig(overlap=False))
    heights = [m.hfield_data.copy() for m in env.sim.models]
    assert all(h.max() == pytest.approx(1.0) and h.min() == 0.0 for h in heights)  # times 0.05 m
    assert len({h.tobytes() for h in heights}) == 3
    assert all(m.hfield_size[0, 2] == 0.05 for m in env.sim.models)
    obs = env.reset()
    action = torch.zeros(3, 12, requires_grad=True)
    total = 0.0
    for _ in range(50):
        result = env.step(action)
        total = total + result.reward.sum()
    total.backward()
    assert torch.isfinite(action.grad).all() and not result.diverged.any() and obs.shape == (3, 48)
    env.close()


def test_bench_robust_runs_an_onnx_model_and_a_checkpoint_in_named_sets(tmp_path):
    """Both kinds of policy through the same evaluation, one table; an untrained policy falls fast."""
    import argparse

    from rfo_ros.bench import robust
    from rfo_ros.bench.latency import export_untrained_policy

    model = export_untrained_policy(tmp_path / "untrained.onnx", flow_steps=1, chunk=2)
    actor, task, options = robust.load_policy(str(model))
    obs = torch.zeros(3, 48)
    actions, _ = actor(obs, None)
    assert actions.shape == (3, 2, 12) and actions.abs().max() <= 1.0
    out = tmp_path / "rows.json"
    sets = "nominal,weak_motors,rough_ground"
    args = argparse.Namespace(policies=str(model), labels="untrained", sets=sets, episodes=2, command=1.0,
                              seed=0, zero_noise=False, json=str(out))  # fmt: skip
    assert robust.run(args) == 0
    rows = json.loads(out.read_text())
    assert [r["set"] for r in rows] == ["nominal", "weak_motors", "rough_ground"]
    keys = {"forward_speed_mean", "progress_speed_mean", "heading_change_deg_mean", "falls"}
    keys |= {"tracking_error_mean"}
    assert all(keys <= set(r) for r in rows)
    text = robust.table(rows, 2, 1.0)
    assert "| weak_motors |" in text and "untrained: speed (× nominal), made good" in text


def test_a_model_without_base_velocity_is_evaluated_in_its_own_observation(tmp_path):
    """The exported contract carries ``base_lin_vel: false``, so bench robust rebuilds the 45-value task;
    the sensor-noise set's base_lin_vel noise is moot for it, not an error."""
    import argparse

    from rfo_ros.bench import robust
    from rfo_ros.bench.latency import export_untrained_policy

    model = export_untrained_policy(tmp_path / "imu.onnx", base_lin_vel=False, flow_steps=1, chunk=1)
    _, name, options = robust.load_policy(str(model))
    assert options["base_lin_vel"] is False and make_task(name, **options).obs_dim == 45
    out = tmp_path / "rows.json"
    args = argparse.Namespace(policies=str(model), labels="imu", sets="sensor_noise", episodes=2, command=1.0,
                              seed=0, zero_noise=False, json=str(out))  # fmt: skip
    assert robust.run(args) == 0
    assert json.loads(out.read_text())[0]["set"] == "sensor_noise"
    with pytest.raises(ValueError, match=r"no observation fields \['base_height'\]"):
        VecEnv(make_task(name, **options), 2, randomization=Randomization(obs_noise={"base_height": 0.1}))


def test_train_rejects_noise_on_a_field_the_observation_lacks(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rfo_ros.train", "--no-progress", "--out", str(out),
         "--set", "env.task=quadruped", "--set", "env.randomization.obs_noise={base_height: 0.1}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "no observation fields ['base_height']" in proc.stderr
    assert not (out / "checkpoints").exists()
