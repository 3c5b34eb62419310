"""Hybrid step Jacobians (rfo_ros/sim/jacobians.py): exact velocity and control columns, finite-difference
position columns, against ``mjd_transitionFD`` (centered, eps 1e-6) block by block."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import mujoco
import numpy as np
import pytest

from rfo_ros.sim import BatchedSim, FDConfig
from rfo_ros.sim.gradient_model import GradientModel
from rfo_ros.sim.jacobians import hybrid_unsupported

SIM = Path(__file__).resolve().parents[1] / "sim"
WORLDS = sorted(p.stem for p in SIM.glob("*.xml"))
# The worlds the derivation covers; go1_fine (Euler, elliptic cones) is differentiated through its
# gradient twin (tests/test_twin.py checks the hybrid Jacobians there).
HYBRID_WORLDS = [
    w for w in WORLDS if hybrid_unsupported(mujoco.MjModel.from_xml_path(str(SIM / f"{w}.xml"))) is None
]
CENTERED = FDConfig(1e-6, True)
HYBRID = FDConfig(1e-6, True, method="hybrid")
TOL = 1e-5  # relative, per block; measured here: <= 4e-8 on every world


def _states(m: mujoco.MjModel, n: int, seed: int, flight: bool) -> tuple[np.ndarray, ...]:
    """``n`` states of random joint targets held for a while; ``flight`` lifts free bodies 1 m up."""
    rng = np.random.default_rng(seed)
    d = mujoco.MjData(m)
    if m.nkey:
        mujoco.mj_resetDataKeyframe(m, d, 0)
    lo, hi = m.actuator_ctrlrange.T
    out = []
    for _ in range(n):
        for t in range(30):
            if t % 10 == 0:
                d.ctrl[:] = lo + (hi - lo) * rng.random(m.nu)
            mujoco.mj_step(m, d)
        qpos = d.qpos.copy()
        if flight:
            for j in np.flatnonzero(m.jnt_type == mujoco.mjtJoint.mjJNT_FREE):
                qpos[m.jnt_qposadr[j] + 2] += 1.0
        out.append((qpos, d.qvel.copy(), d.act.copy(), d.ctrl.copy()))
    return tuple(np.stack(x) for x in zip(*out, strict=True))


def _jacobians(m, fd: FDConfig, states, models=None) -> tuple[np.ndarray, ...]:
    n = states[0].shape[0]
    sim = BatchedSim(m, n, threads=2, fd=fd, models=models)
    try:
        out = sim.step(*states, jacobians=True)
        A, B = out.jacobians.result()
        return A.copy(), B.copy(), out.qpos, out.qvel, sim
    finally:
        sim.close()


def _block_errors(A, B, A_ref, B_ref, nv: int) -> dict[str, float]:
    """Largest relative (Frobenius) error per block over envs; a block that is zero in the reference is
    measured against the whole Jacobian's norm."""
    p, v = slice(0, nv), slice(nv, 2 * nv)
    blocks = {
        "dpos/dpos": (A, A_ref, p, p),
        "dvel/dpos": (A, A_ref, v, p),
        "dpos/dvel": (A, A_ref, p, v),
        "dvel/dvel": (A, A_ref, v, v),
        "dpos/dctrl": (B, B_ref, p, slice(None)),
        "dvel/dctrl": (B, B_ref, v, slice(None)),
    }
    errors = {}
    for name, (X, R, rows, cols) in blocks.items():
        worst = 0.0
        for i in range(X.shape[0]):
            scale = np.linalg.norm(R[i][rows, cols]) or np.linalg.norm(R[i]) or 1.0
            worst = max(worst, np.linalg.norm(X[i][rows, cols] - R[i][rows, cols]) / scale)
        errors[name] = worst
    return errors


def _check(m, states, models=None, label="") -> dict[str, float]:
    A, B, qpos, qvel, sim = _jacobians(m, HYBRID, states, models)
    assert sim.hybrid is not None, f"{label}: the hybrid path fell back: {sim.hybrid_fallback}"
    A_ref, B_ref, qpos_ref, qvel_ref, _ = _jacobians(m, CENTERED, states, models)
    assert np.array_equal(qpos, qpos_ref) and np.array_equal(qvel, qvel_ref)  # the step itself is untouched
    errors = _block_errors(A, B, A_ref, B_ref, m.nv)
    print(f"\n[hybrid] {label}: " + ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))
    assert max(errors.values()) <= TOL, errors
    return errors


def test_only_the_fine_timestep_robot_is_outside_the_hybrid_derivation():
    assert sorted(set(WORLDS) - set(HYBRID_WORLDS)) == ["go1_fine"]


@pytest.mark.parametrize("world", HYBRID_WORLDS)
@pytest.mark.parametrize("flight", [False, True], ids=["contact", "flight"])
def test_hybrid_equals_fd_on_every_world(world, flight):
    m = mujoco.MjModel.from_xml_path(str(SIM / f"{world}.xml"))
    if flight and not np.any(m.jnt_type == mujoco.mjtJoint.mjJNT_FREE):
        pytest.skip(f"{world} has no free body to lift")
    states = _states(m, 6, seed=3, flight=flight)
    _check(m, states, label=f"{world} {'flight' if flight else 'contact'}")
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = states[0][0], states[1][0]
    mujoco.mj_forward(m, d)
    if flight:
        assert not any(m.geom_bodyid[d.contact.geom[k]].min() != 0 for k in range(d.ncon))
    elif world in ("quadruped", "hexapod", "ant", "soft_quadruped"):
        assert d.ncon > 0, "the contact case must touch the ground"


def test_hybrid_equals_fd_on_randomised_models_with_saturated_actuators():
    """Per-env models with frictionloss (its own constraint rows), damping, armature and kp/kd changed,
    and weak motors whose force limit binds: a clamped actuator passes no derivative."""
    base = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(base, 6, seed=5, flight=False)
    rng = np.random.default_rng(0)
    models = []
    for _ in range(6):
        m = copy.copy(base)
        joints = np.arange(6, m.nv)
        m.dof_frictionloss[joints] = rng.uniform(0.05, 0.3)
        m.dof_damping[joints] = base.dof_damping[joints] * rng.uniform(0.5, 2.0) + 0.05
        m.dof_armature[joints] = base.dof_armature[joints] * rng.uniform(0.5, 2.0) + 0.001
        kp = -base.actuator_biasprm[:, 1] * rng.uniform(0.8, 1.2)
        m.actuator_gainprm[:, 0], m.actuator_biasprm[:, 1] = kp, -kp
        m.actuator_biasprm[:, 2] = base.actuator_biasprm[:, 2] * rng.uniform(0.8, 1.2)
        m.actuator_forcerange[:] = base.actuator_forcerange * 0.3  # weak motors: many at their limit
        mujoco.mj_setConst(m, mujoco.MjData(m))
        models.append(m)
    # Some actuators must saturate and some frictionloss rows must be in their linear zone.
    saturated = 0
    for m, qpos, qvel, ctrl in zip(models, states[0], states[1], states[3], strict=True):
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
        mujoco.mj_forward(m, d)
        saturated += int(np.sum(np.isclose(np.abs(d.actuator_force), m.actuator_forcerange[:, 1])))
        assert np.any(d.efc_type == int(mujoco.mjtConstraint.mjCNSTR_FRICTION_DOF))
    assert saturated > 0
    _check(base, states, models=models, label="randomised quadruped")


def test_hybrid_forward_differences_stay_close_to_centered():
    """Training uses forward differences: the exact columns are the same, the position ones move a little."""
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(m, 4, seed=7, flight=False)
    A, B, *_ = _jacobians(m, FDConfig(1e-6, False, method="hybrid"), states)
    A_ref, B_ref, *_ = _jacobians(m, CENTERED, states)
    errors = _block_errors(A, B, A_ref, B_ref, m.nv)
    assert errors["dvel/dvel"] <= TOL and errors["dvel/dctrl"] <= TOL
    assert max(errors.values()) <= 1e-2, errors


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda m: setattr(m.opt, "cone", mujoco.mjtCone.mjCONE_ELLIPTIC), "friction cones are elliptic"),
        (lambda m: setattr(m.opt, "integrator", mujoco.mjtIntegrator.mjINT_EULER), "not implicitfast"),
        (lambda m: setattr(m.opt, "solver", mujoco.mjtSolver.mjSOL_CG), "solver is not Newton"),
    ],
)
def test_the_fallback_fires_and_says_why(edit, reason, caplog):
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    edit(m)
    assert reason in hybrid_unsupported(m)
    states = _states(m, 2, seed=1, flight=False)
    with caplog.at_level(logging.WARNING, logger="rfo_ros.sim.batched"):
        A, B, _, _, sim = _jacobians(m, HYBRID, states)
    assert sim.hybrid is None and reason in sim.hybrid_fallback
    assert any(reason in r.getMessage() and "mjd_transitionFD" in r.getMessage() for r in caplog.records)
    A_ref, B_ref, *_ = _jacobians(m, CENTERED, states)
    assert np.array_equal(A, A_ref) and np.array_equal(B, B_ref)  # it is plain mjd_transitionFD


def test_a_model_with_tendons_falls_back():
    m = mujoco.MjModel.from_xml_string(
        """<mujoco><option integrator="implicitfast"/>
        <worldbody><body><joint name="a" type="hinge"/><geom size="0.1"/>
        <body pos="0 0 0.3"><joint name="b" type="hinge"/><geom size="0.1"/></body></body></worldbody>
        <tendon><fixed name="t"><joint joint="a" coef="1"/><joint joint="b" coef="-1"/></fixed></tendon>
        <actuator><motor tendon="t"/></actuator></mujoco>"""
    )
    assert hybrid_unsupported(m) == "the model has tendons"


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'fd' or 'hybrid'"):
        FDConfig(method="exact")


def test_overlapped_hybrid_jacobians_equal_inline_ones():
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(m, 5, seed=2, flight=False)
    inline = _jacobians(m, HYBRID, states)
    overlapped = _jacobians(m, FDConfig(1e-6, True, overlap=True, method="hybrid"), states)
    for a, b in zip(inline[:4], overlapped[:4], strict=True):
        assert np.array_equal(a, b)


def test_a_failure_in_the_background_maths_reaches_the_caller(monkeypatch):
    """The overlapped hybrid Jacobians' batched maths runs on a background thread: if it fails there, the
    caller's ``result()`` gets the error (it is not swallowed by the pool, and nothing waits forever)."""
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(m, 4, seed=3, flight=False)
    sim = BatchedSim(m, 4, threads=2, fd=FDConfig(1e-6, True, overlap=True, method="hybrid"))
    calls = []

    def broken(caps, A, B):
        calls.append(len(caps))
        raise FloatingPointError("broken maths")

    monkeypatch.setattr(sim.hybrid, "finish_chain", broken)
    try:
        out = sim.step(*states, jacobians=True)
        with pytest.raises(FloatingPointError, match="broken maths"):
            out.jacobians.result()
    finally:
        sim.close()
    assert len(calls) == 2  # tried in the background, then again (and raised) in the caller


# --- the gradient model: contacts that act from a distance, for the Jacobians only -----------------
GRADIENT = GradientModel(margin=0.02, timeconst_scale=2.0)


@pytest.mark.parametrize("method", ["fd", "hybrid"])
@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "overlap"])
def test_the_gradient_model_changes_the_jacobians_and_nothing_else(method, overlap):
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(m, 4, seed=4, flight=False)
    fd = FDConfig(1e-6, False, overlap=overlap, method=method)
    outs = []
    for gradient in (None, GRADIENT):
        sim = BatchedSim(m, 4, threads=2, fd=fd, gradient=gradient)
        out = sim.step(*states, jacobians=True)
        outs.append((out.qpos, out.qvel, *(x.copy() for x in out.jacobians.result()), sim.warmstart()))
        sim.close()
    (q0, v0, A0, B0, w0), (q1, v1, A1, B1, w1) = outs
    assert np.array_equal(q0, q1) and np.array_equal(v0, v1) and np.array_equal(w0, w1)
    assert not np.allclose(A0, A1) and not np.allclose(B0, B1)


def test_the_gradient_model_sees_a_contact_coming():
    """The feet 1 cm above the ground: in the exact Jacobian the joint targets cannot move the centre of
    mass (only internal forces act in flight), in the gradient model's (2 cm margin) they push it up."""
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    mujoco.mj_forward(m, d)
    sphere = mujoco.mjtGeom.mjGEOM_SPHERE
    feet = [g for g in range(m.ngeom) if m.geom_bodyid[g] > 0 and m.geom_type[g] == sphere]
    lowest = min(d.geom_xpos[g, 2] - m.geom_size[g, 0] for g in feet)
    qpos = d.qpos.copy()
    qpos[2] += 0.01 - lowest
    states = (qpos[None], np.zeros((1, m.nv)), np.zeros((1, 0)), d.ctrl[None].copy())
    d.qpos[:] = qpos
    mujoco.mj_forward(m, d)
    jac_com = np.zeros((3, m.nv))
    mujoco.mj_jacSubtreeCom(m, d, jac_com, 1)
    com_z = jac_com[2]  # vertical velocity of the centre of mass per unit of qvel
    sensitivity = []
    for gradient in (None, GradientModel(margin=0.02)):
        sim = BatchedSim(m, 1, threads=1, fd=HYBRID, gradient=gradient)
        out = sim.step(*states, jacobians=True)
        B = out.jacobians.result()[1]
        sim.close()
        sensitivity.append(np.abs(com_z @ B[0, m.nv : 2 * m.nv]).max())
    exact, distant = sensitivity
    print(f"\n[gradient model] d(com vz)/d(ctrl) max: exact {exact:.1e}, 2 cm margin {distant:.1e}")
    assert exact < 1e-3 * distant, sensitivity


def test_randomised_envs_take_their_own_gradient_models_after_a_reset():
    from rfo_ros.envs import VecEnv, make_task
    from rfo_ros.randomization import Randomization

    env = VecEnv(
        make_task("quadruped"), 3, seed=0, threads=1, fd=FDConfig(method="hybrid"),
        randomization=Randomization(friction=(0.4, 1.2)), gradient=GRADIENT,
    )  # fmt: skip
    env.reset()
    sim = env.sim
    for i in range(3):
        model, jac = sim.models[i], sim.jacobian_models[i]
        assert jac is not model and sim.hybrid.models[i] is jac
        assert np.array_equal(jac.geom_friction, model.geom_friction)
        assert np.allclose(jac.geom_margin, model.geom_margin + 0.02)
    assert len({float(m.geom_friction[0, 0]) for m in sim.jacobian_models}) == 3
    env.close()


def test_bad_gradient_models_are_refused():
    with pytest.raises(ValueError, match="margin"):
        GradientModel(margin=-0.01)
    with pytest.raises(ValueError, match="timeconst_scale"):
        GradientModel(timeconst_scale=0.0)
    from rfo_ros.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="gradient_model"):
        load_config(None, ["env.gradient_model.margin=-1"])
    with pytest.raises(ConfigError, match="gradient_model"):
        load_config(None, ["env.gradient_model.margn=0.01"])


def test_a_nan_state_passes_no_gradient_through_hybrid_jacobians():
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    qpos, qvel, act, ctrl = _states(m, 3, seed=6, flight=False)
    qvel[1, 3] = np.nan
    sim = BatchedSim(m, 3, threads=2, fd=HYBRID)
    out = sim.step(qpos, qvel, act, ctrl, jacobians=True)
    A, B = out.jacobians.result()
    sim.close()
    assert out.diverged.tolist() == [False, True, False]
    assert out.jacobians.nonfinite.tolist() == [False, True, False]
    assert not A[1].any() and not B[1].any() and np.isfinite(A).all() and A[0].any()


def test_more_constraint_rows_than_room_pass_no_gradient_once_then_fit():
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    states = _states(m, 2, seed=8, flight=False)
    sim = BatchedSim(m, 2, threads=1, fd=HYBRID)
    sim.hybrid.max_rows = 1  # a standing quadruped has more rows than that
    first = sim.step(*states, jacobians=True).jacobians
    first.result()
    assert first.nonfinite.all()
    second = sim.step(*states, jacobians=True).jacobians
    A, _ = second.result()
    sim.close()
    assert not second.nonfinite.any() and sim.hybrid.max_rows > 1
    np.testing.assert_allclose(A, _jacobians(m, HYBRID, states)[0], rtol=1e-6, atol=1e-9)  # other warm-start


def test_a_gradient_model_of_named_geoms_changes_those_alone():
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    feet = ("FR_foot", "FL_foot", "RR_foot", "RL_foot")
    out = GradientModel(margin=0.01, timeconst_scale=2.0, geoms=feet).apply(m)
    ids = [m.geom(name).id for name in feet]
    others = np.setdiff1d(np.arange(m.ngeom), ids)
    np.testing.assert_allclose(out.geom_margin[ids], m.geom_margin[ids] + 0.01)
    np.testing.assert_allclose(out.geom_solref[ids, 0], 2 * m.geom_solref[ids, 0])
    assert np.array_equal(out.geom_margin[others], m.geom_margin[others])
    assert np.array_equal(out.geom_solref[others], m.geom_solref[others])
    with pytest.raises(ValueError, match="'left_paw' is not in the model"):
        GradientModel(margin=0.01, geoms=("left_paw",)).apply(m)


def test_randomised_damping_reaches_the_hybrid_twins_after_each_reset():
    """The twins that give d(passive - bias)/dqvel are rebuilt when a reset redraws an env's physics."""
    from rfo_ros.envs import VecEnv, make_task
    from rfo_ros.randomization import Randomization

    env = VecEnv(
        make_task("quadruped"), 3, seed=0, threads=1, fd=FDConfig(method="hybrid"),
        randomization=Randomization(joint_damping_scale=(0.2, 3.0)),
    )  # fmt: skip
    for _ in range(2):
        env.reset()
        for model, twin in zip(env.sim.models, env.sim.hybrid.twins, strict=True):
            assert np.array_equal(twin.dof_damping, model.dof_damping)
    assert len({float(m.dof_damping[6]) for m in env.sim.models}) == 3
    env.close()


def test_the_perturbed_steps_skip_the_sensors_and_change_nothing(monkeypatch):
    """The position columns' perturbed steps run sensorless copies of the env's models: the same
    Jacobians, bit for bit, as with the sensors computed (they never act back on the next state)."""
    m = mujoco.MjModel.from_xml_path(str(SIM / "quadruped.xml"))
    assert m.nsensor > 0 and not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_SENSOR
    states = _states(m, 4, seed=5, flight=False)
    A, B, qpos, qvel, sim = _jacobians(m, HYBRID, states)
    assert all(s.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_SENSOR for s in sim.hybrid.step_models)
    assert not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_SENSOR  # the env's own model keeps them
    monkeypatch.setattr("rfo_ros.sim.jacobians._sensorless", copy.copy)
    A_sensors, B_sensors, qpos_sensors, qvel_sensors, _ = _jacobians(m, HYBRID, states)
    assert np.array_equal(A, A_sensors) and np.array_equal(B, B_sensors)
    assert np.array_equal(qpos, qpos_sensors) and np.array_equal(qvel, qvel_sensors)
