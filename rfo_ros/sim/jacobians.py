"""Hybrid step Jacobians: exact velocity and control columns, finite-difference position columns.

``BatchedSim`` fills MuJoCo's tangent-space transition Jacobians ``A`` (N, 2nv+na, 2nv+na) and ``B``
(N, 2nv+na, nu), the layout of ``mjd_transitionFD``, either by finite differences of whole steps or, with
``FDConfig.method = "hybrid"``, with this module.

**Velocity and control columns, exactly.** With the constraint solver's active rows fixed (the map that a
small finite-difference perturbation sees), the Newton optimum solves
``H·qacc = M·qacc_smooth + Jqᵀ·Dq·aref_q`` with ``H = M + Jqᵀ·Dq·Jq``, so the constrained generalised force
``F = qfrc_smooth + qfrc_constraint = M·qacc`` moves as

    dF = M·H⁻¹·(dqfrc_smooth + Jqᵀ·Dq·daref_q),     daref/dqvel = −diag(b)·J   (b = efc_KBIP[:, 1]),

and implicitfast's update ``qvel' = qvel + h·(M − h·qDeriv)⁻¹·F``, ``qpos' = qpos ⊕ h·qvel'`` carries it
to the next state. The active rows come from the sign of ``J·qacc − aref`` (``efc_state`` can disagree
with the final forces), frictionloss rows inside their bound, and equality rows. ``dqfrc_smooth/dctrl``
is each actuator's gain through its moment arm; ``dqfrc_smooth/dqvel`` is the actuators' velocity terms
plus ``d(qfrc_passive − qfrc_bias)/dqvel``, which MuJoCo computes analytically (``mjd_smooth_vel``, not
in the Python bindings) for its ``implicit`` integrator: a twin model with that integrator and no
actuation runs ``mj_implicit`` on the env's own just-stepped data, whose state is then put back. A
clamped control or actuator force passes no derivative.

**Position columns.** They change the whole pipeline (kinematics, collisions, the constraint set), so
they stay finite differences of whole steps, run in C by ``mujoco.rollout`` (no per-column Python),
except the horizontal translation of a lone free-floating robot over horizontal planes, on which the
dynamics do not depend (identity columns).

Each env's capture (``capture``) happens in the stepping thread right after its ``mj_step``, from the
quantities of that step's forward pass; ``simulate`` runs the perturbed steps of a chunk of envs (in C,
on any thread); ``finish`` does the maths for every env at once. A control step of several steps of
the Jacobian model (a gradient twin, or substeps) is captured step by step (``step_and_capture_chain``)
and multiplied out (``finish_chain``). Models with features this derivation does not cover
(``hybrid_unsupported``) are refused by ``BatchedSim``, which then uses ``mjd_transitionFD`` and logs
why once. On 2 cores, overlapped with the networks, this is slower than
``mjd_transitionFD`` (the Python of the capture and the maths competes with the networks for the GIL);
inline it is faster (docs/results, issue 19).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import mujoco
import numpy as np
from mujoco import rollout

from rfo_ros.sim.tangent import joint_layout

_CNSTR = mujoco.mjtConstraint
_STATE = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
# Row kinds whose cost is quadratic exactly when J·qacc − aref < 0 (one-sided rows).
_ONE_SIDED = np.zeros(max(int(v) for v in _CNSTR.__members__.values()) + 2, dtype=bool)  # [-1]: padding
for _kind in ("LIMIT_JOINT", "CONTACT_FRICTIONLESS", "CONTACT_PYRAMIDAL"):
    _ONE_SIDED[int(getattr(_CNSTR, f"mjCNSTR_{_kind}"))] = True
_FRICTION = int(_CNSTR.mjCNSTR_FRICTION_DOF)
_EQUALITY = int(_CNSTR.mjCNSTR_EQUALITY)


def hybrid_unsupported(m: mujoco.MjModel) -> str | None:
    """Why the hybrid Jacobians cannot differentiate ``m`` exactly (None when they can)."""
    opt = m.opt
    checks = (
        (opt.integrator != mujoco.mjtIntegrator.mjINT_IMPLICITFAST, "the integrator is not implicitfast"),
        (opt.solver != mujoco.mjtSolver.mjSOL_NEWTON, "the constraint solver is not Newton"),
        (opt.cone != mujoco.mjtCone.mjCONE_PYRAMIDAL, "friction cones are elliptic"),
        (m.na > 0, "actuators have activation states"),
        (m.ntendon > 0, "the model has tendons"),
        (m.nflex > 0, "the model has flex bodies"),
        (m.neq > 0, "the model has equality constraints"),
        (opt.density > 0 or opt.viscosity > 0, "fluid forces are on"),
        (bool(opt.enableflags & mujoco.mjtEnableBit.mjENBL_SLEEP), "sleeping is on"),
        (opt.noslip_iterations > 0, "noslip is on"),
        (bool(np.any(m.jnt_actfrclimited)), "joints limit their actuator force"),
        (bool(np.any(m.body_gravcomp)), "bodies have gravity compensation"),
        (m.nplugin > 0, "the model has plugins"),
    )
    for failed, why in checks:
        if failed:
            return why
    if not np.all(m.actuator_trntype == int(mujoco.mjtTrn.mjTRN_JOINT)):
        return "an actuator does not act on a joint"
    gains = (int(mujoco.mjtGain.mjGAIN_FIXED), int(mujoco.mjtGain.mjGAIN_AFFINE))
    biases = (int(mujoco.mjtBias.mjBIAS_NONE), int(mujoco.mjtBias.mjBIAS_AFFINE))
    if not (np.isin(m.actuator_gaintype, gains).all() and np.isin(m.actuator_biastype, biases).all()):
        return "an actuator's gain or bias is neither fixed nor affine"
    if np.any((m.actuator_gaintype == gains[1]) & (m.actuator_gainprm[:, 2] != 0)):
        return "an actuator's gain depends on velocity"
    return None


def _twin(model: mujoco.MjModel) -> mujoco.MjModel:
    """A copy of ``model`` whose ``mj_implicit`` leaves d(qfrc_passive − qfrc_bias)/dqvel in qDeriv: the
    implicit integrator's qDeriv includes d(−qfrc_bias)/dqvel, and without actuation that is all."""
    twin = copy.copy(model)
    twin.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICIT
    twin.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
    return twin


def _sensorless(model: mujoco.MjModel) -> mujoco.MjModel:
    """A copy of ``model`` that computes no sensors: the position columns' perturbed steps read only the
    next state, and sensors never act back on it (``mjd_transitionFD`` skips them too). An accelerometer
    alone costs an extra pass over the bodies (measured on the quadruped: ~10 % of a step)."""
    copy_ = copy.copy(model)
    copy_.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_SENSOR)
    return copy_


def _translation_invariant_dofs(m: mujoco.MjModel) -> list[int]:
    """The free joint's horizontal translation dofs when nothing in the world depends on them: one
    free-floating robot (the only free joint, on a child of the world) over a world holding only
    horizontal planes (no other bodies, height fields, equality constraints or mocap bodies)."""
    free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if len(free) != 1 or m.body_parentid[m.jnt_bodyid[free[0]]] != 0:
        return []
    root = m.jnt_bodyid[free[0]]
    if np.any(m.body_rootid[1:] != root) or m.neq > 0 or m.nmocap > 0 or m.nhfield > 0:
        return []
    for g in np.flatnonzero(m.geom_bodyid == 0):
        frame = np.zeros(9)
        mujoco.mju_quat2Mat(frame, m.geom_quat[g])
        if m.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE or abs(frame[8] - 1.0) > 1e-12:
            return []
    if np.any(m.opt.gravity[:2] != 0) or np.any(m.opt.wind != 0):
        return []
    da = m.jnt_dofadr[free[0]]
    return [da, da + 1]


@dataclass
class Layout:
    """Tangent bookkeeping of one model, shared by every env (their models differ only in values)."""

    nq: int
    nv: int
    nu: int
    scalar_q: np.ndarray
    scalar_v: np.ndarray
    quats: list[tuple[int, int]]  # (qpos address, dof address) of each quaternion
    exact_cols: list[int]  # position columns known exactly (identity)
    fd_cols: np.ndarray  # position columns by finite differences
    fd_scalar: tuple[np.ndarray, np.ndarray]  # (row among fd_cols, qpos index)
    fd_quat: list[tuple[int, int, int]]  # (row among fd_cols, quaternion qpos address, axis)

    @classmethod
    def of(cls, m: mujoco.MjModel) -> Layout:
        scalar_q, scalar_v, quats = joint_layout(m)
        exact = _translation_invariant_dofs(m)
        fd_cols = [c for c in range(m.nv) if c not in exact]
        v_to_q = dict(zip(scalar_v, scalar_q, strict=True))
        fd_scalar = (
            np.array([r for r, c in enumerate(fd_cols) if c in v_to_q], int),
            np.array([v_to_q[c] for c in fd_cols if c in v_to_q], int),
        )
        fd_quat = [(r, qa, c - da) for r, c in enumerate(fd_cols) for qa, da in quats if da <= c < da + 3]
        return cls(m.nq, m.nv, m.nu, np.array(scalar_q, int), np.array(scalar_v, int), quats, exact,
                   np.array(fd_cols, int), fd_scalar, fd_quat)  # fmt: skip


@dataclass
class Capture:
    """What one step leaves behind, per env, for its Jacobians (filled by ``capture`` and ``simulate``)."""

    pre: np.ndarray  # (N, nstate) full physics state before the step
    warmstart: np.ndarray  # (N, nv) solver warm-start before the step
    ctrl: np.ndarray  # (N, nu)
    M: np.ndarray  # (N, nv, nv) mass matrix
    qderiv: np.ndarray  # (N, nv, nv) implicitfast's d(actuator + passive force)/dqvel
    smooth_dv: np.ndarray  # (N, nv, nv) d(qfrc_passive - qfrc_bias)/dqvel
    moment: np.ndarray  # (N, nu, nv)
    length: np.ndarray  # (N, nu) actuator lengths
    velocity: np.ndarray  # (N, nu) actuator velocities
    qpos_next: np.ndarray  # (N, nq)
    qvel_next: np.ndarray  # (N, nv)
    solution: np.ndarray  # (N, nv) the step's own qacc: the warm start of the position columns' steps
    minv_qderiv_t: np.ndarray  # (N, nv, nv) (M⁻¹·qDeriv)ᵀ
    #: Actuator constants of every env's model, (N, nu, ...): read once per step (randomisation may
    #: rewrite them between steps, never during one).
    gainprm: np.ndarray
    biasprm: np.ndarray
    ctrlrange: np.ndarray
    forcerange: np.ndarray
    #: Constraint rows, padded to E rows per env (kind -1: no row): J (N, E, nv), J·qacc − aref, efc_D,
    #: efc_KBIP[:, 1], efc_type, efc_frictionloss (N, E).
    J: np.ndarray
    residual: np.ndarray
    D: np.ndarray
    b: np.ndarray
    kind: np.ndarray
    frictionloss: np.ndarray
    #: The next states of the position columns' perturbed steps (N, rows, nstate).
    perturbed: np.ndarray
    #: Envs whose capture or rollout failed (they pass no gradient).
    failed: np.ndarray
    #: Each env's Jacobian model when the step was taken (a reset may swap it before ``finish`` runs).
    models: list = field(default_factory=list)
    #: The same models without sensors: the position columns' perturbed steps run these.
    step_models: list = field(default_factory=list)


class HybridJacobians:
    """Hybrid Jacobians of ``models`` (one per env, of one structure): see the module doc.

    ``eps`` and ``centered`` set the position columns' differences. Per step: ``new_capture``; per env,
    in the thread that steps it, ``before_step`` and then ``capture`` (or ``step_and_capture`` with a
    gradient model); ``simulate`` for chunks of envs on any threads (in C, without the GIL); then
    ``finish`` once, batched over every env (overlapped: on the background thread that simulated the
    last chunk; ``BatchedSim``).
    """

    def __init__(self, models: list[mujoco.MjModel], eps: float = 1e-6, centered: bool = False) -> None:
        m = models[0]
        self.models, self.eps, self.centered = list(models), eps, centered
        self.layout = Layout.of(m)
        self.nstate = mujoco.mj_stateSize(m, _STATE)
        self.rows = len(self.layout.fd_cols) * (2 if centered else 1)  # perturbed steps per env
        self.max_rows = max(64, 8 * m.nv)  # constraint rows kept per env (grows when a step has more)
        self.affine_gain = m.actuator_gaintype == int(mujoco.mjtGain.mjGAIN_AFFINE)
        self.affine_bias = m.actuator_biastype == int(mujoco.mjtBias.mjBIAS_AFFINE)
        self.ctrl_limited = m.actuator_ctrllimited.astype(bool)
        self.force_limited = m.actuator_forcelimited.astype(bool)
        # One twin (see ``_twin``) and one sensorless copy (``_sensorless``) per distinct model, rebuilt by
        # ``set_model`` when an env's model values change (``BatchedSim.models_changed``).
        copies: dict[int, tuple[mujoco.MjModel, mujoco.MjModel]] = {}
        for model in models:
            if id(model) not in copies:
                copies[id(model)] = (_twin(model), _sensorless(model))
        self.twins = [copies[id(model)][0] for model in models]
        self.step_models = [copies[id(model)][1] for model in models]
        self._runners = threading.local()

    def set_model(self, i: int, model: mujoco.MjModel) -> None:
        """Env ``i`` is differentiated with ``model`` (of the same structure) from its next step on."""
        self.models[i], self.twins[i], self.step_models[i] = model, _twin(model), _sensorless(model)

    def new_capture(self, n: int) -> Capture:
        L, E = self.layout, self.max_rows
        return Capture(
            pre=np.empty((n, self.nstate)),
            warmstart=np.empty((n, L.nv)),
            ctrl=np.empty((n, L.nu)),
            M=np.empty((n, L.nv, L.nv)),
            qderiv=np.zeros((n, L.nv, L.nv)),
            smooth_dv=np.zeros((n, L.nv, L.nv)),
            moment=np.zeros((n, L.nu, L.nv)),
            length=np.empty((n, L.nu)),
            velocity=np.empty((n, L.nu)),
            qpos_next=np.empty((n, L.nq)),
            qvel_next=np.empty((n, L.nv)),
            solution=np.empty((n, L.nv)),
            minv_qderiv_t=np.empty((n, L.nv, L.nv)),
            **self._actuator_constants(n),
            J=np.zeros((n, E, L.nv)),
            residual=np.zeros((n, E)),
            D=np.zeros((n, E)),
            b=np.zeros((n, E)),
            kind=np.full((n, E), -1, dtype=np.int32),
            frictionloss=np.zeros((n, E)),
            perturbed=np.empty((n, self.rows, self.nstate)),
            failed=np.zeros(n, dtype=bool),
            models=list(self.models),
            step_models=list(self.step_models),
        )

    def _actuator_constants(self, n: int) -> dict[str, np.ndarray]:
        names = ("gainprm", "biasprm", "ctrlrange", "forcerange")
        if self.models.count(self.models[0]) == len(self.models):  # one shared model: broadcast it
            shared = {k: getattr(self.models[0], f"actuator_{k}") for k in names}
            return {k: np.broadcast_to(v, (n, *v.shape)) for k, v in shared.items()}
        return {k: np.stack([getattr(m, f"actuator_{k}") for m in self.models]) for k in names}

    def before_step(self, cap: Capture, i: int, m: mujoco.MjModel, d: mujoco.MjData) -> None:
        """Record env ``i``'s state before its ``mj_step``."""
        mujoco.mj_getState(m, d, cap.pre[i], _STATE)
        cap.warmstart[i] = d.qacc_warmstart
        cap.ctrl[i] = d.ctrl

    def step_and_capture(self, cap: Capture, i: int, scratch: mujoco.MjData) -> None:
        """Retake env ``i``'s recorded step with its Jacobian model (a gradient model) in ``scratch``, and
        capture it."""
        m = cap.models[i]
        mujoco.mj_setState(m, scratch, cap.pre[i], _STATE)
        scratch.qacc_warmstart[:] = cap.warmstart[i]
        scratch.ctrl[:] = cap.ctrl[i]
        mujoco.mj_step(m, scratch)
        self.capture(cap, i, m, scratch)

    def step_and_capture_chain(self, caps: list[Capture], i: int, scratch: mujoco.MjData) -> None:
        """Env ``i``'s control step as ``len(caps)`` steps of its Jacobian model (a gradient twin), from
        the state ``before_step`` recorded in ``caps[0]``: each step is captured in its own capture and
        starts where the previous one ended (``finish_chain`` multiplies them out)."""
        m = caps[0].models[i]
        for j, cap in enumerate(caps):
            if j:
                mujoco.mj_getState(m, scratch, cap.pre[i], _STATE)
                cap.warmstart[i] = scratch.qacc_warmstart
                cap.ctrl[i] = caps[0].ctrl[i]
            self.step_and_capture(cap, i, scratch)

    def capture(self, cap: Capture, i: int, m: mujoco.MjModel, d: mujoco.MjData) -> None:
        """Record what env ``i``'s Jacobians need from ``d``, just stepped with ``m`` (env ``i``'s Jacobian
        model); ``d`` is left as found."""
        L = self.layout
        mujoco.mj_fullM(m, d, cap.M[i])
        mujoco.mju_sparse2dense(cap.qderiv[i], d.qDeriv, m.D_rownnz, m.D_rowadr, m.D_colind)
        mujoco.mju_sparse2dense(
            cap.moment[i], d.actuator_moment, d.moment_rownnz, d.moment_rowadr, d.moment_colind
        )
        cap.length[i] = d.actuator_length
        cap.velocity[i] = d.actuator_velocity
        cap.qpos_next[i] = d.qpos
        cap.qvel_next[i] = d.qvel
        cap.solution[i] = d.qacc_warmstart
        # Row k of the result is M⁻¹ times row k of qDeriv, i.e. (qDeriv symmetric) (M⁻¹·qDeriv)ᵀ.
        mujoco.mj_solveM(m, d, cap.minv_qderiv_t[i], cap.qderiv[i])
        nefc = d.nefc
        if nefc > cap.J.shape[1]:
            # More constraint rows than this step has room for: this env-step passes no gradient, and
            # the next steps make room (rare: the room starts at several times a standing robot's rows).
            self.max_rows = max(self.max_rows, 2 * nefc)
            cap.failed[i] = True
        elif nefc:
            J = cap.J[i, :nefc]
            _dense_constraint_jacobian(m, d, J)
            cap.residual[i, :nefc] = J @ d.qacc - d.efc_aref
            cap.D[i, :nefc] = d.efc_D
            cap.b[i, :nefc] = d.efc_KBIP[:, 1]
            cap.kind[i, :nefc] = d.efc_type
            cap.frictionloss[i, :nefc] = d.efc_frictionloss
        # The twin's implicit integrator on this data: its qDeriv from the pre-step kinematics, at the
        # pre-step velocity; then it integrates, which is undone.
        twin = self.twins[i]
        d.qvel[:] = cap.pre[i, 1 + L.nq : 1 + L.nq + L.nv]
        warmstart = d.qacc_warmstart.copy()
        time = d.time
        mujoco.mj_implicit(twin, d)
        mujoco.mju_sparse2dense(cap.smooth_dv[i], d.qDeriv, m.D_rownnz, m.D_rowadr, m.D_colind)
        d.qpos[:] = cap.qpos_next[i]
        d.qvel[:] = cap.qvel_next[i]
        d.qacc_warmstart[:] = warmstart
        d.time = time

    def simulate(self, cap: Capture, envs: np.ndarray, data: mujoco.MjData) -> None:
        """The perturbed steps of ``envs``' position columns: one ``rollout`` call, in C, without the GIL
        (``data``: this thread's scratch)."""
        try:
            self._position_steps(cap, envs, data)
        except Exception:  # these envs pass no gradient; the others are not held up
            cap.failed[envs] = True

    def finish(self, cap: Capture, A: np.ndarray, B: np.ndarray) -> None:
        """Fill ``A`` and ``B`` of every env from the capture, batched."""
        nv = self.layout.nv
        dv = self._velocity_and_control(cap)  # (N, nv, nv + nu)
        dq = self._position_rows(cap) @ dv
        A[:] = 0.0
        A[:, nv : 2 * nv, nv : 2 * nv] = dv[:, :, :nv]
        A[:, :nv, nv : 2 * nv] = dq[:, :, :nv]
        for c in self.layout.exact_cols:
            A[:, c, c] = 1.0
        A[:, : 2 * nv, self.layout.fd_cols] = self._position_columns(cap)
        B[:, nv : 2 * nv] = dv[:, :, nv:]
        B[:, :nv] = dq[:, :, nv:]
        A[cap.failed] = np.nan
        B[cap.failed] = np.nan

    def finish_chain(self, caps: list[Capture], A: np.ndarray, B: np.ndarray) -> None:
        """``finish`` for a control step of ``len(caps)`` captured steps: A = A_k···A_1 and
        B = Σ_j A_k···A_(j+1)·B_j, batched over envs (an env with any failed step gets NaN)."""
        if len(caps) == 1:
            self.finish(caps[0], A, B)
            return
        A_j, B_j = np.empty_like(A), np.empty_like(B)
        for j, cap in enumerate(caps):
            self.finish(cap, A if j == 0 else A_j, B if j == 0 else B_j)
            if j:
                B[:] = A_j @ B + B_j
                A[:] = A_j @ A

    # --- the pieces ------------------------------------------------------------------------------
    def _velocity_and_control(self, cap: Capture) -> np.ndarray:
        """[d qvel'/d qvel, d qvel'/d ctrl] (N, nv, nv + nu)."""
        L, n = self.layout, cap.M.shape[0]
        nv = L.nv
        # The rows whose cost is quadratic at the optimum: the sign of J·qacc − aref (efc_state can
        # disagree with the final forces), frictionloss rows inside their bound, equality rows always.
        # Only the rows some env filled: the room kept is several times a standing robot's rows.
        filled = np.flatnonzero((cap.kind != -1).any(0))
        rows = int(filled[-1]) + 1 if filled.size else 0
        kind, residual, D = cap.kind[:, :rows], cap.residual[:, :rows], cap.D[:, :rows]
        active = _ONE_SIDED[kind] & (residual < 0)  # kind -1 (padding) reads the table's last entry
        active |= (kind == _FRICTION) & (np.abs(D * residual) < cap.frictionloss[:, :rows])
        active |= kind == _EQUALITY
        J = cap.J[:, :rows]
        DJ = (D * active)[..., None] * J
        J_t = np.swapaxes(J, 1, 2)
        H = cap.M + J_t @ DJ
        rhs = np.empty((n, nv, nv + L.nu))
        rhs[:, :, :nv] = cap.smooth_dv - J_t @ (cap.b[:, :rows, None] * DJ)  # aref moves with qvel: −b·J
        gainprm, biasprm, ctrlrange, forcerange = cap.gainprm, cap.biasprm, cap.ctrlrange, cap.forcerange
        length, velocity, ctrl = cap.length, cap.velocity, cap.ctrl
        # Actuator force = gain·ctrl + bias; a clamped control or force passes no derivative.
        gain = gainprm[..., 0] + self.affine_gain * gainprm[..., 1] * length
        inside = (ctrl > ctrlrange[..., 0]) & (ctrl < ctrlrange[..., 1])
        ctrl_free = ~self.ctrl_limited | inside
        ctrl = np.where(self.ctrl_limited, np.clip(ctrl, ctrlrange[..., 0], ctrlrange[..., 1]), ctrl)
        bias = self.affine_bias * (biasprm[..., 0] + biasprm[..., 1] * length + biasprm[..., 2] * velocity)
        raw = gain * ctrl + bias
        force_free = ~self.force_limited | ((raw > forcerange[..., 0]) & (raw < forcerange[..., 1]))
        moment = cap.moment
        moment_t = np.swapaxes(moment, 1, 2)
        dforce_dvel = self.affine_bias * biasprm[..., 2] * force_free
        rhs[:, :, :nv] += moment_t @ (dforce_dvel[..., None] * moment)
        rhs[:, :, nv:] = moment_t * (gain * (ctrl_free & force_free))[:, None, :]
        # dqvel' = h·(M − h·qDeriv)⁻¹·M·H⁻¹·rhs = h·(H·(I − h·M⁻¹·qDeriv))⁻¹·rhs: one solve
        h = cap.models[0].opt.timestep
        system = H - h * (H @ np.swapaxes(cap.minv_qderiv_t, 1, 2))
        system[cap.failed] = np.eye(nv)  # a failed capture may hold anything: keep the solve well-posed
        dv = h * np.linalg.solve(system, rhs)
        dv[:, :, :nv] += np.eye(nv)
        return dv

    def _position_rows(self, cap: Capture) -> np.ndarray:
        """d(qpos' in the tangent space)/d qvel' (N, nv, nv): h, or h·Jr(h·ω') for a quaternion, the
        right Jacobian of q' = q ⊗ exp(h·ω') (what ``mjd_quatIntegrate`` gives)."""
        L, qvel_next = self.layout, cap.qvel_next
        h = cap.models[0].opt.timestep
        P = np.zeros((qvel_next.shape[0], L.nv, L.nv))
        P[:, L.scalar_v, L.scalar_v] = h
        for _qa, da in L.quats:
            P[:, da : da + 3, da : da + 3] = h * _right_jacobian(h * qvel_next[:, da : da + 3])
        return P

    def _position_steps(self, cap: Capture, envs: np.ndarray, data: mujoco.MjData) -> None:
        """Whole steps from ``envs``' pre-step states moved along each non-exact position column, in
        one ``rollout`` call, into ``cap.perturbed[envs]``."""
        L, n, rows = self.layout, len(envs), self.rows
        signs = (1.0, -1.0) if self.centered else (1.0,)
        cols = len(L.fd_cols)
        starts = np.repeat(cap.pre[envs], rows, axis=0).reshape(n, len(signs), cols, -1)
        qpos = starts[..., 1 : 1 + L.nq]
        for s, sign in enumerate(signs):
            perturb_positions(qpos[:, s], sign * self.eps, L)
        total = n * rows
        out = np.empty((total, 1, self.nstate))
        thread_rollout(self._runners).rollout(
            [cap.step_models[i] for i in envs for _ in range(rows)],
            [data],
            starts.reshape(total, -1),
            np.repeat(cap.ctrl[envs], rows, axis=0)[:, None, :],
            # From the step's own solution the perturbed solves converge in fewer Newton iterations, to
            # the same optimum (a converged solve does not depend on where it started).
            initial_warmstart=np.repeat(cap.solution[envs], rows, axis=0),
            nstep=1,
            skip_checks=True,  # shapes are right by construction; the checks cost more than the steps
            state=out,
            sensordata=np.empty((total, 1, cap.models[0].nsensordata)),
        )
        cap.perturbed[envs] = out.reshape(n, rows, -1)

    def _position_columns(self, cap: Capture) -> np.ndarray:
        """The non-exact position columns by finite differences (N, 2nv, columns)."""
        L, eps = self.layout, self.eps
        signs = 2 if self.centered else 1
        n, cols = cap.perturbed.shape[0], len(L.fd_cols)
        diff = tangent_difference(
            cap.perturbed.reshape(n, signs, cols, -1), cap.qpos_next, cap.qvel_next, L
        )  # (N, signs, cols, 2nv)
        delta = (diff[:, 0] - diff[:, 1]) / (2 * eps) if self.centered else diff[:, 0] / eps
        return np.swapaxes(delta, 1, 2)


def thread_rollout(runners: threading.local) -> rollout.Rollout:
    """The calling thread's rollout runner in ``runners``, made on first use (no thread pool of its own:
    the callers' threads share the work)."""
    runner = getattr(runners, "rollout", None)
    if runner is None:
        runner = runners.rollout = rollout.Rollout(nthread=0)
    return runner


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (..., 4), broadcast."""
    aw, ax, ay, az = (a[..., k] for k in range(4))
    bw, bx, by, bz = (b[..., k] for k in range(4))
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def perturb_positions(qpos: np.ndarray, step: float, L: Layout) -> None:
    """``qpos`` (n, columns, nq): row r of every env moves by ``step`` along the r-th finite-difference
    column, as ``mj_integratePos`` moves it (a quaternion: q ⊗ exp(step·e_k), local frame)."""
    rows, index = L.fd_scalar
    qpos[:, rows, index] += step
    for r, qa, axis in L.fd_quat:
        rotation = np.zeros(4)
        rotation[0], rotation[1 + axis] = np.cos(0.5 * step), np.sin(0.5 * step)
        qpos[:, r, qa : qa + 4] = _quat_mul(qpos[:, r, qa : qa + 4], rotation)


def tangent_difference(states: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, L: Layout) -> np.ndarray:
    """(qpos, qvel) of ``states`` (n, ..., nstate) minus the reference (n, nq), (n, nv) in the tangent
    space, as ``mj_differentiatePos`` measures it (a quaternion in the reference's local frame)."""
    extra = states.ndim - 2
    expand = (slice(None), *([None] * extra))
    q = states[..., 1 : 1 + L.nq]
    out = np.empty((*states.shape[:-1], 2 * L.nv))
    out[..., L.scalar_v] = q[..., L.scalar_q] - qpos[expand][..., L.scalar_q]
    for qa, da in L.quats:
        inverse = qpos[:, qa : qa + 4] * np.array([1.0, -1.0, -1.0, -1.0])
        rel = _quat_mul(inverse[expand], q[..., qa : qa + 4])
        sin_half = np.linalg.norm(rel[..., 1:], axis=-1, keepdims=True)
        angle = 2.0 * np.arctan2(sin_half, rel[..., :1])
        angle = np.where(angle > np.pi, angle - 2.0 * np.pi, angle)
        scale = np.where(sin_half > 0, angle / np.where(sin_half > 0, sin_half, 1.0), 2.0)
        out[..., da : da + 3] = rel[..., 1:] * scale
    out[..., L.nv :] = states[..., 1 + L.nq : 1 + L.nq + L.nv] - qvel[expand]
    return out


def _right_jacobian(phi: np.ndarray) -> np.ndarray:
    """Jr(φ) (n, 3, 3) of SO(3): Exp(φ + δ) = Exp(φ)·Exp(Jr(φ)·δ) to first order."""
    theta2 = np.sum(phi * phi, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    b = np.where(small, 1.0 / 6.0 - theta2 / 120.0, (safe - np.sin(safe)) / safe**3)
    x, y, z = phi[:, 0], phi[:, 1], phi[:, 2]
    zero = np.zeros_like(x)
    rows = ([zero, -z, y], [z, zero, -x], [-y, x, zero])
    skew = np.stack([np.stack(row, -1) for row in rows], -2)
    return np.eye(3) - a[:, None, None] * skew + b[:, None, None] * (skew @ skew)


def _dense_constraint_jacobian(m: mujoco.MjModel, d: mujoco.MjData, out: np.ndarray) -> None:
    """Write the constraint Jacobian (nefc, nv) into ``out``, dense whatever MuJoCo stored."""
    nefc, nv = d.nefc, m.nv
    if mujoco.mj_isSparse(m):
        dense = np.zeros((nefc, nv))  # sparse2dense wants a contiguous destination
        mujoco.mju_sparse2dense(dense, d.efc_J, d.efc_J_rownnz, d.efc_J_rowadr, d.efc_J_colind)
        out[:] = dense
    else:
        out[:] = d.efc_J[: nefc * nv].reshape(nefc, nv)
