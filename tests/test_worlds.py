"""The shipped MuJoCo worlds and their tasks, on real MuJoCo with a few envs each.

Per world: it loads, 1000 random-action steps stay finite with no divergence, the reward responds to the
behaviour it names, termination fires on failure, and one differentiable step backprops to the action.
"""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest
import torch
from go1 import DEFAULT_JOINT_POS, JOINT_NAMES

from rfo_ros.envs import VecEnv, make_task
from rfo_ros.envs import legged_obs as lo
from rfo_ros.envs.depth import pinhole_ray_directions
from rfo_ros.envs.push import PUSH_OFFSET, fingertip_xy
from rfo_ros.sim import FDConfig
from rfo_ros.sim.autograd import SimState, mj_step_autograd


def _random_rollout(task, num_envs: int = 8, steps: int = 1000, seed: int = 0) -> VecEnv:
    env = VecEnv(task, num_envs, seed=seed, threads=1)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        action = torch.from_numpy(rng.uniform(-1, 1, (num_envs, task.action_dim))).float()
        result = env.step(action)
        assert torch.isfinite(result.obs).all() and torch.isfinite(result.reward).all()
    assert env.stats.divergences == 0
    assert torch.isfinite(env.state.qpos).all() and env.state.qvel.abs().max() < 100
    return env


def _assert_reward_backprops_to_action(task, num_envs: int = 2, steps_before: int = 5) -> None:
    env = VecEnv(task, num_envs, seed=1, threads=1)
    for _ in range(steps_before):
        env.step(torch.zeros(num_envs, task.action_dim))
    action = torch.full((num_envs, task.action_dim), 0.1, requires_grad=True)
    env.step(action).reward.sum().backward()
    assert action.grad is not None and torch.isfinite(action.grad).all()
    assert action.grad.abs().sum() > 0
    env.close()


def _state(task, qpos: np.ndarray, qvel: np.ndarray | None = None) -> SimState:
    qpos = torch.as_tensor(np.atleast_2d(qpos), dtype=torch.float64)
    qvel = torch.zeros(qpos.shape[0], task.model.nv, dtype=torch.float64) if qvel is None else qvel
    return SimState(
        qpos, torch.as_tensor(np.atleast_2d(qvel), dtype=torch.float64), qpos.new_zeros(qpos.shape[0], 0)
    )


# --- shared legged observation maths ----------------------------------------------------------------


def _quat_from_axis_angle(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def test_quaternion_helpers_match_mujoco_on_numpy_and_torch():
    rng = np.random.default_rng(0)
    quats = np.stack([_quat_from_axis_angle(rng.normal(size=3), rng.uniform(-3, 3)) for _ in range(5)])
    vecs = rng.normal(size=(5, 3))
    expected = []
    for q, v in zip(quats, vecs, strict=True):
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, q)
        expected.append(mat.reshape(3, 3).T @ v)
    expected = np.array(expected)
    np.testing.assert_allclose(lo.quat_rotate_inverse(quats, vecs), expected, atol=1e-12)
    torch_out = lo.quat_rotate_inverse(torch.from_numpy(quats), torch.from_numpy(vecs))
    np.testing.assert_allclose(torch_out.numpy(), expected, atol=1e-12)
    gravity = lo.quat_rotate_inverse(quats, np.broadcast_to([0.0, 0.0, -1.0], (5, 3)))
    np.testing.assert_allclose(lo.projected_gravity(quats), gravity, atol=1e-12)
    np.testing.assert_allclose(lo.projected_gravity(torch.from_numpy(quats)).numpy(), gravity, atol=1e-12)
    np.testing.assert_allclose(lo.projected_gravity(np.array([1.0, 0, 0, 0])), [0, 0, -1])


def test_observation_layout_is_48_and_numpy_matches_torch():
    layout = lo.legged_obs_layout(JOINT_NAMES, DEFAULT_JOINT_POS)
    assert layout.size == 48
    assert layout.names == (
        "base_lin_vel",
        "base_ang_vel",
        "projected_gravity",
        "command",
        "joint_pos",
        "joint_vel",
        "last_action",
    )
    rng = np.random.default_rng(1)
    fields = {f.name: rng.normal(size=(2, f.size)) for f in layout.fields}
    obs_np = lo.build_observation(fields, layout)
    obs_t = lo.build_observation({k: torch.from_numpy(v) for k, v in fields.items()}, layout)
    assert obs_np.shape == (2, 48)
    np.testing.assert_allclose(obs_t.numpy(), obs_np, atol=1e-12)
    np.testing.assert_allclose(obs_np[:, layout.slice("base_lin_vel")], 2.0 * fields["base_lin_vel"])
    np.testing.assert_allclose(obs_np[:, layout.slice("command")], fields["command"] * [2.0, 2.0, 0.25])
    np.testing.assert_allclose(
        obs_np[:, layout.slice("joint_pos")], fields["joint_pos"] - np.array(DEFAULT_JOINT_POS)
    )
    meta = json.loads(json.dumps(lo.layout_metadata(layout)))
    assert [f["start"] for f in meta["fields"]] == [0, 3, 6, 9, 12, 24, 36] and meta["size"] == 48
    with pytest.raises(KeyError, match="command"):
        lo.build_observation({k: v for k, v in fields.items() if k != "command"}, layout)


# --- quadruped ----------------------------------------------------------------------------------------


@pytest.fixture
def quadruped():
    return make_task("quadruped")


def test_quadruped_world_matches_the_robot_contract(quadruped):
    m = quadruped.model
    assert (m.nq, m.nv, m.nu, m.na) == (19, 18, 12, 0)
    assert m.joint(0).name == "trunk" and m.body("trunk").id == 1
    assert tuple(m.joint(int(j)).name for j in m.actuator_trnid[:, 0]) == JOINT_NAMES
    assert abs(m.body_subtreemass[1] - 12.76) < 1e-6
    spec = quadruped.robot_spec()
    json.dumps(spec)
    assert spec["joint_names"] == list(JOINT_NAMES) and spec["dt"] == pytest.approx(0.01)
    assert spec["joint_lower"][:3] == pytest.approx([-0.863, -0.686, -2.818])
    assert spec["torque_limit"][:3] == pytest.approx([23.7, 23.7, 35.55])
    assert spec["kp"][0] == 40 and spec["kd"][0] == 1.0
    for name in ("imu_quat", "imu_gyro", "imu_acc", "imu_vel"):
        m.sensor(name)
    m.camera("front")
    ctrl = quadruped.action_to_ctrl(torch.zeros(1, 12))
    np.testing.assert_allclose(ctrl[0].numpy(), DEFAULT_JOINT_POS)
    ctrl = quadruped.action_to_ctrl(torch.full((1, 12), -1.0))
    np.testing.assert_allclose(ctrl[0, :3].numpy(), [-0.5, 0.4, -2.3])


def test_free_joint_velocity_frames_match_the_imu_sensors(quadruped):
    """qvel[0:3] is world-frame linear velocity, qvel[3:6] body-frame angular velocity."""
    m = quadruped.model
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    d.qpos[2] = 1.0
    d.qpos[3:7] = _quat_from_axis_angle([0.3, -0.5, 1.0], 0.8)
    d.qvel[0:6] = [0.7, -0.2, 0.3, 0.4, 0.1, -0.6]
    mujoco.mj_forward(m, d)
    state = _state(quadruped, d.qpos.copy(), d.qvel.copy())
    obs = quadruped.observe(state, torch.zeros(1, 12))[0].numpy()
    layout = quadruped.obs_layout
    np.testing.assert_allclose(obs[layout.slice("base_lin_vel")] / 2.0, d.sensor("imu_vel").data, atol=1e-9)
    np.testing.assert_allclose(obs[layout.slice("base_ang_vel")] / 0.25, d.sensor("imu_gyro").data, atol=1e-9)
    np.testing.assert_allclose(d.sensor("imu_quat").data, d.qpos[3:7], atol=1e-9)


def test_quadruped_random_actions_stay_finite(quadruped):
    env = _random_rollout(quadruped)
    assert env.obs_dim == 48


def test_quadruped_reward_tracks_the_command_and_failure_terminates(quadruped):
    quadruped.fixed_command = (1.0, 0.0, 0.0)
    stand = np.array([0, 0, 0.28, 1, 0, 0, 0, *DEFAULT_JOINT_POS])
    walking_vel = np.zeros(18)
    walking_vel[0] = 1.0
    standing, walking = _state(quadruped, stand), _state(quadruped, stand, walking_vel)
    a = torch.zeros(1, 12)
    r_stand, r_walk = quadruped.reward(standing, a, standing), quadruped.reward(standing, a, walking)
    assert r_walk.item() > r_stand.item() + 0.9  # 1.5 (1 - e^-1) with the σ² = 1 tracking kernel
    # Sideways instead of forwards: no tracking reward.
    sideways = walking_vel.copy()
    sideways[:2] = [0.0, 1.0]
    assert quadruped.reward(standing, a, _state(quadruped, stand, sideways)).item() < r_walk.item() - 1.0
    assert not quadruped.terminated(standing).item()
    tilted = stand.copy()
    tilted[3:7] = _quat_from_axis_angle([1, 0, 0], np.radians(70))
    low = stand.copy()
    low[2] = 0.12
    assert quadruped.terminated(_state(quadruped, tilted)).item()
    assert quadruped.terminated(_state(quadruped, low)).item()
    tilted[3:7] = _quat_from_axis_angle([1, 0, 0], np.radians(30))
    assert quadruped.reward(standing, a, _state(quadruped, tilted)).item() < r_stand.item()


def test_quadruped_commands_are_resampled_per_env_and_can_be_fixed(quadruped):
    env = VecEnv(quadruped, 16, seed=0, threads=1)
    vx = quadruped.command[:, 0]
    assert ((vx >= 0.5) & (vx <= 1.5)).all() and vx.std() > 0.1
    assert (quadruped.command[:, 1:] == 0).all()
    quadruped.fixed_command = (0.8, 0.0, 0.2)
    env.reset()
    assert torch.allclose(quadruped.command, torch.tensor([0.8, 0.0, 0.2], dtype=torch.float64).expand(16, 3))


def test_quadruped_reward_backprops_to_action(quadruped):
    _assert_reward_backprops_to_action(quadruped)


def test_quadruped_depth_image_shape_range_and_response():
    task = make_task("quadruped_depth")
    assert task.image_shape == (1, 16, 16)
    _, h, w = task.image_shape
    stand = np.array([0, 0, 0.30, 1, 0, 0, 0, *DEFAULT_JOINT_POS])
    low = stand.copy()
    low[2] = 0.15
    obs = task.observe(_state(task, np.stack([stand, low])), torch.zeros(2, 12))
    assert obs.shape == (2, 48 + h * w) and task.obs_dim == 48 + h * w
    proprio = make_task("quadruped").observe(_state(task, np.stack([stand, low])), torch.zeros(2, 12))
    torch.testing.assert_close(obs[:, :48], proprio)  # image appended after the proprioception
    image = obs[:, 48:].reshape(2, h, w)
    assert (image >= 0).all() and (image <= 1).all()
    assert (image[:, 0] == 1).all()  # the top rows look above the horizon: nothing within range
    ground_rows = image[:, h // 2 :]
    assert (ground_rows < 1).all() and (ground_rows[1] < ground_rows[0]).all()  # lower camera: nearer ground
    env = VecEnv(task, 2, seed=0, threads=1)
    assert env.step(torch.zeros(2, 12)).obs.shape == (2, 48 + h * w)


def test_pinhole_rays_point_along_minus_z_and_span_the_fov():
    dirs = pinhole_ray_directions(4, 4, 90.0)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0)
    assert (dirs[:, 2] < 0).all()
    assert dirs[0, 0] < 0 < dirs[0, 1]  # top-left pixel: left (-x) and up (+y)
    corner = dirs[0] / -dirs[0, 2]
    np.testing.assert_allclose(np.abs(corner[:2]), [0.75, 0.75])  # pixel centre at 3/4 of tan(45°)


# --- ant ----------------------------------------------------------------------------------------------


@pytest.fixture
def ant():
    return make_task("ant")


def test_ant_loads_and_random_actions_stay_finite(ant):
    m = ant.model
    assert (m.nq, m.nv, m.nu) == (15, 14, 8)
    env = _random_rollout(ant)
    assert env.obs_dim == 30


def test_ant_reward_prefers_running_forward_and_falling_terminates(ant):
    stand = np.array([0, 0, 0.4, 1, 0, 0, 0, *ant.default_joint_pos])
    forward, backward = np.zeros(14), np.zeros(14)
    forward[0], backward[0] = 1.0, -1.0
    still = _state(ant, stand)
    a = torch.zeros(1, 8)
    r_still = ant.reward(still, a, still).item()
    assert ant.reward(still, a, _state(ant, stand, forward)).item() > r_still + 0.9
    assert ant.reward(still, a, _state(ant, stand, backward)).item() < r_still - 0.9
    assert ant.reward(still, torch.ones(1, 8), still).item() < r_still  # control cost
    assert not ant.terminated(still).item()
    on_belly, flipped = stand.copy(), stand.copy()
    on_belly[2] = 0.2
    flipped[3:7] = [0, 1, 0, 0]
    assert ant.terminated(_state(ant, on_belly)).item() and ant.terminated(_state(ant, flipped)).item()


def test_ant_reward_backprops_to_action(ant):
    _assert_reward_backprops_to_action(ant)


# --- soft quadruped -----------------------------------------------------------------------------------


@pytest.fixture
def soft_quadruped():
    return make_task("soft_quadruped")


def test_soft_quadruped_is_under_actuated_and_random_actions_stay_finite(soft_quadruped):
    m = soft_quadruped.model
    assert (m.nq, m.nv, m.nu) == (27, 26, 8)
    passive = [m.joint(j).name for j in range(1, m.njnt) if j not in set(m.actuator_trnid[:, 0])]
    assert len(passive) == 12 and all("flex" in name for name in passive)
    assert (m.jnt_stiffness[[m.joint(name).id for name in passive]] > 0).all()
    env = _random_rollout(soft_quadruped)
    assert env.obs_dim == 54


def test_soft_quadruped_reward_prefers_forward_motion_and_falling_terminates(soft_quadruped):
    stand = np.array([0, 0, 0.26, 1, 0, 0, 0, *soft_quadruped.default_joint_pos])
    forward = np.zeros(26)
    forward[0] = 0.5
    still = _state(soft_quadruped, stand)
    a = torch.zeros(1, 8)
    assert soft_quadruped.reward(still, a, _state(soft_quadruped, stand, forward)).item() > (
        soft_quadruped.reward(still, a, still).item() + 0.4
    )
    rolled, low = stand.copy(), stand.copy()
    rolled[3:7] = _quat_from_axis_angle([1, 0, 0], np.radians(70))
    low[2] = 0.05
    assert not soft_quadruped.terminated(still).item()
    assert soft_quadruped.terminated(_state(soft_quadruped, np.stack([rolled, low]))).all()


def test_soft_quadruped_reward_backprops_to_action(soft_quadruped):
    _assert_reward_backprops_to_action(soft_quadruped)


# --- push ---------------------------------------------------------------------------------------------


@pytest.fixture
def push():
    return make_task("push")


def test_push_fingertip_kinematics_match_mujoco(push):
    m, d = push.model, mujoco.MjData(push.model)
    rng = np.random.default_rng(0)
    q = rng.uniform(-2.5, 2.5, (5, 3))
    expected = []
    for row in q:
        d.qpos[:3] = row
        mujoco.mj_kinematics(m, d)
        expected.append(d.site("fingertip").xpos[:2].copy())
    np.testing.assert_allclose(fingertip_xy(torch.from_numpy(q)).numpy(), np.array(expected), atol=1e-12)


def test_push_random_actions_stay_finite_and_goals_are_per_env(push):
    assert (push.model.nq, push.model.nv, push.model.nu) == (7, 7, 3)
    env = _random_rollout(push)
    assert env.obs_dim == 28
    assert push.goal.shape == (8, 2) and push.goal.std(0).min() > 0
    old = push.goal.clone()
    fresh = push.initial_state(8, np.random.default_rng(5))  # a reset of env 0 draws its box and goal
    push.resample(np.array([True] + [False] * 7), np.random.default_rng(5))
    assert not torch.equal(push.goal[0], old[0]) and torch.equal(push.goal[1:], old[1:])
    box_goal = torch.linalg.vector_norm(fresh.qpos[0, 3:5] - push.goal[0]).item()
    assert 0.1 <= box_goal <= 0.25


def test_push_starts_with_the_fingertip_behind_the_box(push):
    env = VecEnv(push, 64, seed=3, threads=1)
    tip, box, _ = push.tip_box_goal(env.state)
    assert (tip - push.push_point(env.state)).abs().max() <= push.start_spread + 1e-9
    assert torch.linalg.vector_norm(tip - box, dim=1).min() >= push.start_clearance
    lower, upper = push.model.jnt_range[:3, 0], push.model.jnt_range[:3, 1]
    q = env.state.qpos[:, :3].numpy()
    assert ((q >= lower) & (q <= upper)).all()
    env.close()


def test_push_reward_prefers_box_near_goal_and_tip_at_push_point(push):
    push.resample(np.ones(1, dtype=bool), np.random.default_rng(0))
    goal = push.goal[0].numpy()
    arm = np.array([2.0, 0.5, 0.5])  # fingertip far from the box
    far = _state(push, np.concatenate([arm, goal + [0.2, 0.0], [0.0, 0.0]]))
    near = _state(push, np.concatenate([arm, goal + [0.1, 0.0], [0.0, 0.0]]))
    at_goal = _state(push, np.concatenate([arm, goal + [0.01, 0.0], [0.0, 0.0]]))
    a = torch.zeros(1, 3)
    r_far, r_near, r_goal = (push.reward(far, a, s).item() for s in (far, near, at_goal))
    assert r_far < r_near < r_goal
    assert push.success(at_goal).item() and not push.success(near).item()
    # The fingertip term pulls towards the push point, PUSH_OFFSET behind the box on the goal line.
    tip = fingertip_xy(torch.zeros(1, 3))[0].numpy()  # arm stretched out along +x
    box = tip - [PUSH_OFFSET, 0.0]
    push.goal = torch.tensor([[box[0] - 0.2, box[1]]], dtype=torch.float64)  # 0.2 m beyond the box, on -x
    at_point = _state(push, np.concatenate([[0.0, 0.0, 0.0], box, [0.0, 0.0]]))
    np.testing.assert_allclose(push.push_point(at_point)[0].numpy(), tip, atol=1e-12)
    assert push.reward(at_point, a, at_point).item() == pytest.approx(-0.2)  # only the box-goal distance
    turned = _state(push, np.concatenate([[0.3, 0.0, 0.0], box, [0.0, 0.0]]))
    miss = np.linalg.norm(fingertip_xy(torch.tensor([[0.3, 0.0, 0.0]]))[0].numpy() - tip)
    assert push.reward(turned, a, turned).item() == pytest.approx(-0.2 - 0.5 * miss)


def test_push_finger_moves_the_box_and_table_friction_stops_it(push):
    """Contacts: a sweep of the arm pushes a box in its path; once released, friction stops it."""
    env = VecEnv(push, 1, seed=0, threads=1)
    box = fingertip_xy(torch.tensor([[-0.6, 0.0, 0.0]]))[0].numpy() + [0.0, 0.07]
    env.state = _state(push, np.concatenate([[-0.6, 0.0, 0.0], box, [0.0, 0.0]]))
    for _ in range(25):
        env.step(torch.tensor([[1.0, 0.0, 0.0]]))  # shoulder servos counter-clockwise into the box
    moved = env.state.qpos[0, 3:5].numpy() - box
    assert np.linalg.norm(moved) > 0.05
    assert abs(env.state.qpos[0, 5].item()) < 0.005  # the table carries the box
    qpos, qvel = env.state.qpos.clone(), torch.zeros_like(env.state.qvel)
    qpos[0, 0] -= 1.5  # swing the arm out of the way and slide the box at 0.5 m/s
    qvel[0, 3] = 0.5
    env.state = SimState(qpos, qvel, env.state.act)
    amap = push.action_map()
    hold = torch.from_numpy((qpos[0, :3].numpy() - amap.offset) / amap.scale)[None]  # servo targets: stay out
    for _ in range(25):
        env.step(hold)
    assert env.state.qvel[0, 3:5].abs().max() < 1e-3  # box-table mu = 0.3: stops within ~0.17 s


def test_push_reward_backprops_to_action(push):
    _assert_reward_backprops_to_action(push)


# --- gradients through contact, every world -------------------------------------------------------------


@pytest.mark.parametrize("name", ["quadruped", "ant", "soft_quadruped", "push"])
def test_rollout_gradient_matches_finite_differences(name):
    """d(8-step return)/d(actions) from the FD-Jacobian autograd chain vs central differences of rollouts."""
    task = make_task(name)
    env = VecEnv(task, 1, seed=0, threads=1, fd=FDConfig(centered=True))  # to 1e-5: centered Jacobians
    rng = np.random.default_rng(0)
    for _ in range(20):  # settle into contact
        env.step(torch.from_numpy(rng.uniform(-0.3, 0.3, (1, task.action_dim))).float())
    start, warmstart = env.state.detach(), env.sim.warmstart()
    actions = torch.from_numpy(rng.uniform(-0.5, 0.5, (8, task.action_dim)))

    def episode_return(a: torch.Tensor) -> torch.Tensor:  # float64 throughout (VecEnv rewards are float32)
        env.sim.set_warmstart(warmstart)
        state, total = start, 0.0
        for t in range(len(a)):
            ctrl = task.action_to_ctrl(a[t : t + 1])
            nxt, diverged = mj_step_autograd(env.sim, env.tmap, state, ctrl)  # one control step
            assert not diverged.any()
            total, state = total + task.reward(state, a[t : t + 1], nxt).sum(), nxt
        return total

    a = actions.clone().requires_grad_(True)
    episode_return(a).backward()
    direction = torch.from_numpy(rng.normal(size=actions.shape))
    direction /= direction.norm()
    eps = 1e-5
    with torch.no_grad():
        fd = (episode_return(actions + eps * direction) - episode_return(actions - eps * direction)) / (
            2 * eps
        )
    assert (a.grad * direction).sum().item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_the_scenery_model_only_adds_looks():
    """The demo renders the world with a checker floor and a sky; its physics must be the world's own."""
    from rfo_ros.render import render_frames, scenery_model
    from rfo_ros.sim.worlds import load_model

    plain, scenery = load_model("quadruped"), scenery_model("quadruped")
    assert (scenery.nq, scenery.nv, scenery.nu, scenery.nbody) == (plain.nq, plain.nv, plain.nu, plain.nbody)
    assert scenery.ntex == plain.ntex + 2 and scenery.nmat == plain.nmat + 1
    floor = mujoco.mj_name2id(scenery, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert scenery.geom_matid[floor] == scenery.nmat - 1
    datas = [mujoco.MjData(m) for m in (plain, scenery)]
    for m, d in zip((plain, scenery), datas, strict=True):
        mujoco.mj_resetDataKeyframe(m, d, 0)
        d.ctrl[:] = 0.3
        for _ in range(50):
            mujoco.mj_step(m, d)
    np.testing.assert_array_equal(datas[0].qpos, datas[1].qpos)
    (frame,) = render_frames(scenery, [(0.0, datas[1].qpos)], size=(48, 64))
    assert frame.shape == (48, 64, 3) and frame.std() > 10  # a picture, not a blank


def _scripted_push_action(task, state) -> np.ndarray:
    """A hand-written pusher: damped least-squares IK of the fingertip to the push point, then 6 cm
    through it along the goal line until the box is within 2 cm of the goal."""
    from rfo_ros.envs.push import LINK_LENGTHS

    q = state.qpos[:, :3].numpy()
    tip, box, goal = (x.numpy() for x in task.tip_box_goal(state))
    towards = (goal - box) / np.linalg.norm(goal - box, axis=1, keepdims=True)
    point = task.push_point(state).numpy()
    pushing = (np.linalg.norm(tip - point, axis=1) < 0.025) & (np.linalg.norm(goal - box, axis=1) >= 0.02)
    target = np.where(pushing[:, None], point + 0.06 * towards, point)
    angles, lengths = np.cumsum(q, 1), np.asarray(LINK_LENGTHS)
    jac = np.zeros((len(q), 2, 3))
    for i in range(3):
        jac[:, 0, i] = -(lengths[i:] * np.sin(angles[:, i:])).sum(1)
        jac[:, 1, i] = (lengths[i:] * np.cos(angles[:, i:])).sum(1)
    jt = np.transpose(jac, (0, 2, 1))
    dq = np.einsum("nij,nj->ni", jt @ np.linalg.inv(jac @ jt + 1e-3 * np.eye(2)), target - tip)
    amap = task.action_map()
    return np.clip((q + dq - amap.offset) / amap.scale, -1.0, 1.0)


def test_push_is_solvable_a_scripted_pusher_clears_the_threshold(push):
    """The world, reset and reward are consistent: a simple pusher gets most boxes to their goals and
    scores above ``solved_return`` (the figures in PushBox's docstring come from this controller)."""
    n = 32
    env = VecEnv(push, n, seed=2, threads=1)
    returns, success = np.zeros(n), np.zeros(n, dtype=bool)
    for _ in range(push.info.episode_length):
        success = push.success(env.state).numpy()  # before the last step resets the envs
        returns += env.step(torch.from_numpy(_scripted_push_action(push, env.state)).float()).reward.numpy()
    assert success.mean() >= 0.5 and returns.mean() > push.info.solved_return
    env.close()
