"""The differentiable control step on robots that step finer than their policy (issue: RFO on the robots
users bring): whole-control-step finite differences, the gradient twin, its stability check, and a
Menagerie-style robot file."""

from __future__ import annotations

import copy
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
import yaml

from rfo_ros.envs import VecEnv, make_task
from rfo_ros.robot import Robot, read_description
from rfo_ros.sim import BatchedSim, FDConfig
from rfo_ros.sim.control_step import ControlStepFD
from rfo_ros.sim.gradient_model import GradientModel, UnstableTwinError

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "sim"
WORLDS = sorted(p.stem for p in SIM.glob("*.xml"))
FINE = mujoco.MjModel.from_xml_path(str(SIM / "go1_fine.xml"))
TWIN = GradientModel(steps=1, integrator="implicitfast", cone="pyramidal")


def _walk_states(m: mujoco.MjModel, n: int, seed: int, substeps: int = 1) -> tuple[np.ndarray, ...]:
    """``n`` states (qpos, qvel, act, ctrl) of random joint targets held for a while, in contact."""
    rng = np.random.default_rng(seed)
    d = mujoco.MjData(m)
    if m.nkey:
        mujoco.mj_resetDataKeyframe(m, d, 0)
    lo, hi = m.actuator_ctrlrange.T
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    centre = m.key_ctrl[0] if m.nkey else mid
    out = []
    for _ in range(n):
        for t in range(30):
            if t % 10 == 0:  # targets near the keyframe's, kept off the control limits
                d.ctrl[:] = np.clip(centre + 0.3 * half * rng.uniform(-1, 1, m.nu), lo + 0.01, hi - 0.01)
            mujoco.mj_step(m, d, substeps)
        out.append((d.qpos.copy(), d.qvel.copy(), d.act.copy(), d.ctrl.copy()))
    return tuple(np.stack(x) for x in zip(*out, strict=True))


def _chain(m: mujoco.MjModel, state: tuple[np.ndarray, ...], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The control step's Jacobians as a chain of per-step centered ``mjd_transitionFD``."""
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:], d.act[:], d.ctrl[:] = state
    nx = 2 * m.nv + m.na
    a, b = np.zeros((nx, nx)), np.zeros((nx, m.nu))
    A, B = np.eye(nx), np.zeros((nx, m.nu))
    for _ in range(steps):
        mujoco.mjd_transitionFD(m, d, 1e-6, True, a, b, None, None)
        A, B = a @ A, a @ B + b
        mujoco.mj_step(m, d)
    return A, B


def _relative(x: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))


@pytest.mark.parametrize("world", WORLDS)
def test_whole_step_differences_match_the_chain_on_every_world(world):
    """Three simulator steps per control step, in contact: one rollout of the whole control step against
    the chain of per-step Jacobians (both centered, eps 1e-6), to 1e-5 (the median of 6 states).

    Both differences assume a converged constraint solve: at MuJoCo's default tolerance (1e-8) go1_fine's
    elliptic cones leave ~1e-4 of solver noise in either, so the solve is converged fully here. A state
    whose active constraint set switches inside the ±eps stencil differences a kink, where neither is
    the derivative (one ant state here: 2.5e-5), so single states get 1e-4."""
    m = mujoco.MjModel.from_xml_path(str(SIM / f"{world}.xml"))
    m.opt.tolerance = 1e-14
    states = _walk_states(m, 6, seed=1)
    whole = ControlStepFD(m, 3, 1e-6, centered=True)
    nx = 2 * m.nv + m.na
    d = mujoco.MjData(m)
    errors = []
    for state in zip(*states, strict=True):
        d.qpos[:], d.qvel[:], d.act[:], d.ctrl[:] = state
        A, B = np.empty((nx, nx)), np.empty((nx, m.nu))
        before = d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()
        whole(m, d, A, B)
        after = d.qpos, d.qvel, d.qacc_warmstart
        assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True)), "state not restored"
        A_ref, B_ref = _chain(m, state, 3)
        errors.append(max(_relative(A, A_ref), _relative(B, B_ref)))
    print(f"\n[whole step] {world}: relative error median {np.median(errors):.1e}, max {max(errors):.1e}")
    assert np.median(errors) < 1e-5 and max(errors) < 1e-4, errors


def test_one_whole_step_is_mjd_transition_fd():
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _walk_states(m, 2, seed=2)
    fd = FDConfig(1e-6, True, overlap=False)
    sim = BatchedSim(m, 2, threads=1, fd=fd)
    A_ref, B_ref = (x.copy() for x in sim.step(*states, jacobians=True).jacobians.result())
    whole = ControlStepFD(m, 1, 1e-6, centered=True)
    d = mujoco.MjData(m)
    for i, state in enumerate(zip(*states, strict=True)):
        d.qpos[:], d.qvel[:], d.act[:], d.ctrl[:] = state
        A, B = np.empty_like(A_ref[i]), np.empty_like(B_ref[i])
        whole(m, d, A, B)
        assert _relative(A, A_ref[i]) < 1e-7 and _relative(B, B_ref[i]) < 1e-7


@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "overlap"])
def test_a_control_step_of_substeps_is_the_simulators_steps_and_its_jacobians_the_chains(overlap):
    """go1_fine standing, 10 steps per control step, its solve converged fully (see above)."""
    m = copy.copy(FINE)
    m.opt.tolerance = 1e-14
    states = _walk_states(m, 3, seed=3)
    sim = BatchedSim(m, 3, threads=2, fd=FDConfig(1e-6, True, overlap=overlap), substeps=10)
    out = sim.step(*states, jacobians=True)
    A, B = out.jacobians.result()
    sim.close()
    for i, state in enumerate(zip(*states, strict=True)):
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:], d.ctrl[:] = state[0], state[1], state[3]
        mujoco.mj_step(m, d, 10)
        assert np.array_equal(out.qpos[i], d.qpos) and np.array_equal(out.qvel[i], d.qvel)
        A_ref, B_ref = _chain(m, state, 10)
        assert _relative(A[i], A_ref) < 1e-5 and _relative(B[i], B_ref) < 1e-5


def test_hybrid_jacobians_of_several_steps_are_chained():
    """The quadruped (implicitfast, pyramidal: the hybrid derivation's ground) at 3 steps per control step:
    three captured steps, multiplied out, against the chain of per-step differences."""
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _walk_states(m, 3, seed=5)
    sim = BatchedSim(m, 3, threads=2, fd=FDConfig(1e-6, True, method="hybrid"), substeps=3)
    A, B = sim.step(*states, jacobians=True).jacobians.result()
    assert sim.hybrid is not None
    sim.close()
    for i, state in enumerate(zip(*states, strict=True)):
        A_ref, B_ref = _chain(m, state, 3)
        assert _relative(A[i], A_ref) < 1e-5 and _relative(B[i], B_ref) < 1e-5


@pytest.mark.parametrize("method", ["fd", "hybrid"])
@pytest.mark.parametrize("steps", [1, 2])
def test_the_twins_jacobians_are_finite_differences_of_the_twin(method, steps):
    twin_model = GradientModel(steps=steps, integrator="implicitfast", cone="pyramidal")
    states = _walk_states(FINE, 3, seed=4, substeps=10)
    sim = BatchedSim(FINE, 3, threads=2, fd=FDConfig(1e-6, True, method=method), gradient=twin_model,
                     substeps=10)  # fmt: skip
    A, B = sim.step(*states, jacobians=True).jacobians.result()
    assert (sim.hybrid is not None) == (method == "hybrid"), sim.hybrid_fallback
    twin = sim.jacobian_models[0]
    assert twin.opt.timestep == pytest.approx(0.02 / steps)
    assert twin.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    assert FINE.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC  # the simulated model is left as it was
    sim.close()
    for i, state in enumerate(zip(*states, strict=True)):
        A_ref, B_ref = _chain(twin, state, steps)
        assert _relative(A[i], A_ref) < 1e-5 and _relative(B[i], B_ref) < 1e-5


@pytest.mark.parametrize("method", ["fd", "hybrid"])
@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "overlap"])
def test_the_simulation_is_bit_identical_with_and_without_a_twin(method, overlap):
    task = make_task("legged", robot="go1_fine")
    fd = FDConfig(1e-6, False, overlap=overlap, method=method)
    trajectories, gradients = [], []
    for gradient in (None, TWIN):
        env = VecEnv(task, 3, seed=0, threads=2, fd=fd, gradient=gradient)
        env.reset()
        actions = torch.linspace(-0.5, 0.5, 3 * 12).reshape(3, 12).requires_grad_(True)
        states, total = [], 0.0
        for t in range(3):
            result = env.step(torch.roll(actions, t, dims=1))
            total = total + result.reward.sum()
            states.append((env.state.qpos.detach().clone(), env.state.qvel.detach().clone()))
        total.backward()
        trajectories.append((states, env.sim.warmstart()))
        gradients.append(actions.grad.clone())
        env.close()
    (states0, warm0), (states1, warm1) = trajectories
    for (q0, v0), (q1, v1) in zip(states0, states1, strict=True):
        assert torch.equal(q0, q1) and torch.equal(v0, v1)
    assert np.array_equal(warm0, warm1)
    assert not torch.allclose(gradients[0], gradients[1])  # the gradient did come from the twin
    cos = torch.nn.functional.cosine_similarity(gradients[0].flatten(), gradients[1].flatten(), dim=0)
    assert cos > 0.5, f"the twin's gradient points away from the exact one (cos {cos:.2f})"


def _stiff_robot(tmp_path: Path) -> dict:
    """go1_fine with kp-500 actuators and no torque limits: too stiff for one 0.02 s step."""
    xml = (SIM / "go1_fine.xml").read_text().replace('kp="100"', 'kp="500"')
    xml = xml.replace('forcelimited="true"', 'forcelimited="false"')
    (tmp_path / "stiff.xml").write_text(xml)
    tree = yaml.safe_load((ROOT / "config" / "robots" / "go1_fine.yaml").read_text())
    return {**tree, "name": "stiff", "mjcf": str(tmp_path / "stiff.xml")}


def test_an_unstable_twin_is_refused_with_the_setting_to_change(tmp_path):
    task = make_task("legged", robot=_stiff_robot(tmp_path))
    with pytest.raises(UnstableTwinError, match=r"env\.gradient_model\.steps") as err:
        VecEnv(task, 2, seed=0, threads=1, gradient=GradientModel(steps=1))
    assert "max_twin_error" in str(err.value)
    env = VecEnv(task, 2, seed=0, threads=1, gradient=GradientModel(steps=4))  # shorter steps follow it
    env.close()


def test_bad_twin_settings_are_refused():
    from rfo_ros.config import ConfigError, load_config

    cfg = load_config(None, ["env.gradient_model.steps=2", "env.gradient_model.integrator=implicitfast"])
    assert cfg.env.gradient_model.steps == 2
    for bad in ("env.gradient_model.steps=-1", "env.gradient_model.integrator=rk4",
                "env.gradient_model.cone=round", "env.gradient_model.max_twin_error=0"):  # fmt: skip
        with pytest.raises(ConfigError, match="gradient_model"):
            load_config(None, [bad])
    with pytest.raises(ValueError, match="integrator"):
        GradientModel(integrator="rk4")


# --- a robot file pointed at a Menagerie-style checkout: meshes, and a scene.xml that adds the floor ---
_OBJ = """# a 0.25 x 0.08 x 0.114 m box (the trunk's visual mesh)
v -0.125 -0.04 -0.057\nv 0.125 -0.04 -0.057\nv 0.125 0.04 -0.057\nv -0.125 0.04 -0.057
v -0.125 -0.04 0.057\nv 0.125 -0.04 0.057\nv 0.125 0.04 0.057\nv -0.125 0.04 0.057
f 1 3 2\nf 1 4 3\nf 5 6 7\nf 5 7 8\nf 1 2 6\nf 1 6 5\nf 2 3 7\nf 2 7 6\nf 3 4 8\nf 3 8 7\nf 4 1 5\nf 4 5 8
"""


def _menagerie_checkout(root: Path) -> Path:
    """A checkout laid out as MuJoCo Menagerie's: ``go1.xml`` (meshes in ``assets/``, no floor) and
    ``scene.xml`` (includes it; adds the light, a textured ``floor`` and nothing else)."""
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "trunk.obj").write_text(_OBJ)
    robot = (SIM / "go1_fine.xml").read_text()
    robot = robot.replace('<compiler angle="radian" autolimits="true"/>',
                          '<compiler angle="radian" autolimits="true" meshdir="assets"/>\n'
                          '  <asset><mesh name="trunk" file="trunk.obj"/></asset>')  # fmt: skip
    start = robot.index('<geom name="floor"')
    robot = robot[:start] + robot[robot.index("/>", start) + 2 :]
    robot = robot.replace('<light pos="0 0 3" dir="0 0 -1" directional="true"/>', "")
    trunk = '<geom name="trunk" class="collision"'
    robot = robot.replace(trunk, f'<geom type="mesh" mesh="trunk" mass="0"/>\n      {trunk}')
    (root / "go1.xml").write_text(robot)
    (root / "scene.xml").write_text("""<mujoco model="go1 scene">
  <include file="go1.xml"/>
  <asset>
    <texture type="2d" name="groundplane" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3" width="300"
             height="300"/>
    <material name="groundplane" texture="groundplane" texuniform="true" texrepeat="5 5"/>
  </asset>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" directional="true"/>
    <geom name="floor" size="0 0 0.05" type="plane" material="groundplane" contype="1" conaffinity="1"/>
  </worldbody>
</mujoco>
""")
    return root / "scene.xml"


def test_a_menagerie_style_robot_file_loads_and_trains(tmp_path):
    scene = _menagerie_checkout(tmp_path / "menagerie" / "unitree_go1")
    tree = yaml.safe_load((ROOT / "config" / "robots" / "go1_fine.yaml").read_text())
    tree["name"], tree["mjcf"] = "go1_menagerie", str(scene.relative_to(tmp_path).as_posix())
    robot_file = tmp_path / "go1_menagerie.yaml"
    robot_file.write_text(yaml.safe_dump(tree))
    description = read_description(robot_file)
    assert Path(description.mjcf) == scene.resolve()  # relative to the robot file
    robot = Robot.load(description)
    assert robot.model.nmesh == 1 and robot.dt == pytest.approx(0.02)
    from rfo_ros.randomization import Randomization

    task = make_task("legged", robot=description)
    env = VecEnv(task, 2, seed=0, threads=1, gradient=TWIN, randomization=Randomization(rough_ground_m=0.03))
    env.reset()
    action = torch.zeros(2, task.action_dim, requires_grad=True)
    env.step(action).reward.sum().backward()
    assert action.grad is not None and torch.isfinite(action.grad).all() and action.grad.abs().sum() > 0
    env.close()
