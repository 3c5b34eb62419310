"""N ``MjData`` of one ``MjModel`` (or of per-env copies of it): threaded stepping and finite-difference
step Jacobians.

One ``step`` is one control step: ``substeps`` simulator steps with the control held, in one C call per
env. Its Jacobians are those of the whole control step: ``mjd_transitionFD`` (or the hybrid Jacobians)
when the Jacobians' world takes one step per control step, else finite differences of the whole
control step (``rfo_ros.sim.control_step``), on the env's own model or on its gradient twin.

MuJoCo's Python bindings release the GIL inside ``mj_step`` and ``mjd_transitionFD``, so a small
thread pool scales across cores without processes. The calling thread works too, and every worker pulls
the next env index from one shared iterator: a thread that the OS (or a neighbour's job) slows down
simply takes fewer envs, instead of holding the whole batch up as a fixed chunk would.

Jacobians can be *overlapped* (``FDConfig.overlap``): ``step`` records each env's pre-step state and
returns at once; background threads replay those states into scratch ``MjData`` and run
``mjd_transitionFD`` while the caller goes on with the policy network and the next steps. The backward
pass computes whatever is still unstarted itself and waits for the rest. The result is bit-identical to
computing them inline (tested); what it buys is the core that would otherwise idle while Python runs the
networks.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import mujoco
import numpy as np

from rfo_ros.sim.control_step import ControlStepFD
from rfo_ros.sim.gradient_model import GradientModel
from rfo_ros.sim.jacobians import Capture, HybridJacobians, hybrid_unsupported

log = logging.getLogger(__name__)

# Warnings that mean the step cannot be trusted (MuJoCo may also silently reset the data on BADQACC).
# BADCTRL: a NaN/huge ctrl that MuJoCo silently replaced by zeros, so the step is not the one asked for.
_FATAL_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADCTRL,
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
)
_FATAL_INDEX = np.array([int(w) for w in _FATAL_WARNINGS])


@dataclass(frozen=True)
class FDConfig:
    """How step Jacobians are computed.

    ``method``: ``"fd"``, every column by ``mjd_transitionFD``; ``"hybrid"``, the velocity and control
    columns exactly and the position columns by finite differences (``rfo_ros.sim.jacobians``; a model
    it does not cover falls back to ``"fd"`` with one log line). ``eps``/``centered`` set the finite
    differences: eps 1e-6 with centered differences matched whole-rollout finite differences to ~1e-7
    relative on a contact-rich legged model; forward differences at the same eps only to ~1e-3, far
    below the noise of a policy-gradient estimate, at about half the cost. The defaults are training's
    (``env.fd_*`` in the training config).
    """

    eps: float = 1e-6
    centered: bool = False
    #: Compute Jacobians in background threads, overlapped with the caller's work (see module doc).
    overlap: bool = True
    method: Literal["fd", "hybrid"] = "fd"

    def __post_init__(self) -> None:
        if self.method not in ("fd", "hybrid"):
            raise ValueError(f"FDConfig.method must be 'fd' or 'hybrid', got {self.method!r}")


@dataclass
class Jacobians:
    """Tangent-space step Jacobians of every env, possibly still being computed in the background.

    ``result()`` returns ``(A (N, 2nv+na, 2nv+na), B (N, 2nv+na, nu))``: the caller first computes the
    envs no background thread has started (``help``), then waits for the rest. Rows of an env whose
    Jacobians came out non-finite are zeroed there (that env-step then passes no gradient) and
    ``nonfinite`` (N,) marks them.
    """

    A: np.ndarray
    B: np.ndarray
    #: Set when every env's Jacobians are written (background mode).
    done: threading.Event | None = None
    help: Callable[[], None] | None = None
    nonfinite: np.ndarray | None = None
    #: Called with the seconds ``result()`` took (the sim's ``fd_wait`` timer).
    on_wait: Callable[[float], None] | None = None
    #: Completes A and B once every env's part is done (the hybrid Jacobians' batched maths).
    finish: Callable[[], None] | None = None

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.nonfinite is None:
            t0 = time.perf_counter()
            if self.help is not None:
                self.help()
                self.help = None
            if self.done is not None:
                self.done.wait()  # not the futures: a queued task may start after this step is done
            if self.finish is not None:
                self.finish()
                self.finish = None
            if self.on_wait is not None:
                self.on_wait(time.perf_counter() - t0)
            self.nonfinite = ~(np.isfinite(self.A).all((1, 2)) & np.isfinite(self.B).all((1, 2)))
            self.A[self.nonfinite] = 0.0
            self.B[self.nonfinite] = 0.0
        return self.A, self.B


@dataclass
class StepOutput:
    """Next state of every env and, when asked for, its step Jacobians.

    Shapes: qpos (N, nq), qvel (N, nv), act (N, na); ``diverged`` (N,) marks envs whose step produced a
    non-finite or exploding state or a solver warning.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    act: np.ndarray
    diverged: np.ndarray
    jacobians: Jacobians | None = None


class BatchedSim:
    """Steps ``num_envs`` copies of one model in a thread pool, optionally with FD Jacobians.

    Each ``step`` advances ``substeps`` simulator steps (one control step). ``models`` (one per env, all
    of ``model``'s sizes) gives each env its own physics constants (domain randomisation writes into
    them); each env's step and Jacobians then use its own model. Whoever
    changes a model's values calls ``models_changed``. ``gradient`` (``rfo_ros.sim.gradient_model``)
    takes the Jacobians on a copy of each model with contacts that act from a distance, or on a gradient
    twin that steps at its own rate; the steps stay on the models themselves.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        num_envs: int,
        threads: int | None = None,
        fd: FDConfig = FDConfig(),
        max_qvel: float = 1e3,
        models: list[mujoco.MjModel] | None = None,
        gradient: GradientModel | None = None,
        substeps: int = 1,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        if models is not None and len(models) != num_envs:
            raise ValueError(f"{len(models)} models for {num_envs} envs")
        self.model = model
        #: The model each env steps and is differentiated with.
        self.models = list(models) if models is not None else [model] * num_envs
        self.num_envs = num_envs
        #: Simulator steps per ``step`` (one control step).
        self.substeps = substeps
        self.gradient = gradient if gradient is not None and gradient.active else None
        #: Steps of the Jacobians' world per control step (a twin's own, else the simulator's).
        self.jacobian_steps = self.gradient.jacobian_steps(substeps) if self.gradient else substeps
        #: The model each env's Jacobians are taken on: its own, or its gradient model.
        self.jacobian_models = self._gradient_models(self.models) if self.gradient else self.models
        self.fd = fd
        self.max_qvel = max_qvel
        self.threads = max(1, min(threads or os.cpu_count() or 1, num_envs))
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.nq, self.nv, self.na, self.nu = model.nq, model.nv, model.na, model.nu
        self.state_dim = 2 * self.nv + self.na
        # Per-env numpy views into MjData, made once: building them is most of the per-env Python cost.
        self._views = [(d.qpos, d.qvel, d.act, d.ctrl, d.warning.number) for d in self.datas]
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        # Overlapped Jacobians: their own threads, each replaying recorded states into a scratch MjData.
        self._fd_pool: ThreadPoolExecutor | None = None
        self._scratch: queue.SimpleQueue[mujoco.MjData] = queue.SimpleQueue()
        self._timing_lock = threading.Lock()
        #: Seconds spent in mj_step and in mjd_transitionFD (summed over threads / threads, ≈ wall when
        #: inline; overlapped, "fd" is background work) and blocked waiting for overlapped Jacobians.
        self.timing = {"step": 0.0, "fd": 0.0, "fd_wait": 0.0}
        #: The hybrid Jacobians, or None for ``mjd_transitionFD`` (asked for, or the model needs it).
        self.hybrid: HybridJacobians | None = None
        #: Why ``fd.method: hybrid`` fell back to finite differences (None when it did not).
        self.hybrid_fallback: str | None = None
        if fd.method == "hybrid":
            # Several steps a control step are captured one by one and chained (``finish_chain``).
            self.hybrid_fallback = hybrid_unsupported(self.jacobian_models[0])
            if self.hybrid_fallback is None:
                self.hybrid = HybridJacobians(self.jacobian_models, fd.eps, fd.centered)
            else:
                log.warning("hybrid Jacobians: %s, so this model uses mjd_transitionFD", self.hybrid_fallback)
        #: Finite differences of a whole control step, when the Jacobians' world takes several steps and
        #: the hybrid Jacobians do not cover it.
        self.control_step = None
        if self.jacobian_steps > 1 and self.hybrid is None:
            self.control_step = ControlStepFD(model, self.jacobian_steps, fd.eps, fd.centered)
        # Per stepping thread, where the hybrid Jacobians retake a step with the gradient model.
        self._step_scratch: queue.SimpleQueue[mujoco.MjData] = queue.SimpleQueue()
        # The hybrid capture reads the simulated step itself only when that step is the Jacobians' step.
        self._own_step = self.gradient is None and substeps == 1
        if self.hybrid is not None and not self._own_step:
            for _ in range(self.threads):
                self._step_scratch.put(mujoco.MjData(model))

    def _gradient_models(self, models: list[mujoco.MjModel]) -> list[mujoco.MjModel]:
        copies: dict[int, mujoco.MjModel] = {}
        for m in models:
            if id(m) not in copies:
                copies[id(m)] = self.gradient.apply(m, self.substeps)
        return [copies[id(m)] for m in models]

    def models_changed(self, mask: np.ndarray) -> None:
        """The values of the envs' models under ``mask`` (N,) were rewritten: refresh what derives from
        them (gradient-model copies, the hybrid Jacobians' twins)."""
        distinct = len({id(m) for m in self.models}) == len(self.models)
        if not distinct or not (self.gradient is not None or self.hybrid is not None):
            return
        for i in np.flatnonzero(mask):
            if self.gradient is not None:
                self.jacobian_models[i] = self.gradient.apply(self.models[i], self.substeps)
            if self.hybrid is not None:
                self.hybrid.set_model(i, self.jacobian_models[i])

    def warmstart(self) -> np.ndarray:
        """Each env's solver warm-start (N, nv): part of the state for bit-exact resumption."""
        return np.stack([d.qacc_warmstart.copy() for d in self.datas])

    def set_warmstart(self, warmstart: np.ndarray) -> None:
        for d, w in zip(self.datas, warmstart, strict=True):
            d.qacc_warmstart[:] = w

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        if self._fd_pool is not None:
            # Finish queued Jacobians: a graph built before close() may still run its backward.
            self._fd_pool.shutdown(wait=True)
            self._fd_pool = None

    def _add_time(self, key: str, seconds: float) -> None:
        with self._timing_lock:
            self.timing[key] += seconds

    def _ensure_fd_pool(self) -> int:
        """Start the background Jacobian threads (and their scratch MjData) once; returns their count."""
        workers = max(1, self.threads - 1)
        if self._fd_pool is None:
            self._fd_pool = ThreadPoolExecutor(workers, thread_name_prefix="rfo_fd")
            for _ in range(workers + 1):  # one scratch MjData per worker, one for the caller
                self._scratch.put(mujoco.MjData(self.models[0]))  # every env's model has its sizes
        return workers

    def _env_jacobians(self, model: mujoco.MjModel, d: mujoco.MjData, A: np.ndarray, B: np.ndarray) -> None:
        """One env's control-step Jacobians on ``model`` from ``d``'s state and ctrl (``d`` left as found)."""
        if self.control_step is not None:
            self.control_step(model, d, A, B)
        else:
            mujoco.mjd_transitionFD(model, d, self.fd.eps, self.fd.centered, A, B, None, None)

    def _hybrid_jacobians(self, jac: Jacobians, caps: list[Capture], background: bool) -> None:
        """The hybrid Jacobians of every env (captured as they stepped): their perturbed steps in chunks
        of envs that the threads draw from one iterator (in the background, where the caller joins in
        ``jac.result()``, or here, on every thread), then the maths, batched over the envs, by the thread
        that completes the last chunk (in the background, the spare core does it while the caller runs
        the networks; the maths is mostly NumPy's C loops, which hold the GIL only between calls)."""
        hybrid = self.hybrid
        chunk = max(1, -(-self.num_envs // (2 * self.threads)))
        chunks = iter([np.arange(s, min(s + chunk, self.num_envs)) for s in range(0, self.num_envs, chunk)])
        workers = self._ensure_fd_pool()
        workers = workers if background else self.threads - 1
        lock, remaining, finished = threading.Lock(), [self.num_envs], [False]
        jac.done = threading.Event() if background else None

        def finish() -> None:
            with lock:  # once, by whichever thread gets here first after the last chunk
                if finished[0]:
                    return
                t0 = time.perf_counter()
                hybrid.finish_chain(caps, jac.A, jac.B)
                finished[0] = True
                self._add_time("fd", time.perf_counter() - t0)

        def work(_indices=None) -> None:
            d = self._scratch.get()
            last = False
            try:
                t0 = time.perf_counter()
                for envs in chunks:
                    for cap in caps:
                        hybrid.simulate(cap, envs, d)
                    with lock:
                        remaining[0] -= len(envs)
                        last = remaining[0] == 0
                self._add_time("fd", (time.perf_counter() - t0) / (workers + 1))
            finally:
                self._scratch.put(d)
            if last and jac.done is not None:
                try:
                    finish()
                except Exception:  # left undone: ``jac.result()`` retries it and raises in the caller
                    log.debug("hybrid Jacobians' maths failed in the background", exc_info=True)
                finally:
                    jac.done.set()

        if background:
            for _ in range(workers):
                self._fd_pool.submit(work)
            jac.help, jac.finish = work, finish
        else:
            t0 = time.perf_counter()
            self._map(work)
            finish()
            self._add_time("fd_wait", time.perf_counter() - t0)

    def _submit_jacobians(self, jac: Jacobians, states: tuple[np.ndarray, ...]) -> None:
        """Queue the Jacobians (``_env_jacobians``) of every env at the recorded pre-step ``states``.

        ``threads - 1`` background workers (at least one) and, in ``jac.result()``, the caller all draw
        env indices from one iterator: while the caller runs the networks the workers use the spare
        core(s) without oversubscribing, and once the caller needs the Jacobians it joins in.
        """
        workers = self._ensure_fd_pool()
        # A snapshot: a reset may swap an env's gradient model before these background steps run.
        models, na, env_jacobians = list(self.jacobian_models), self.na, self._env_jacobians
        qpos, qvel, act, ctrl, warm = states
        indices = iter(range(self.num_envs))  # ``next`` on it is atomic under the GIL
        jac.done, lock, remaining = threading.Event(), threading.Lock(), [self.num_envs]

        def work() -> None:
            d = self._scratch.get()
            try:
                t0 = time.perf_counter()
                for i in indices:
                    d.qpos[:] = qpos[i]
                    d.qvel[:] = qvel[i]
                    if na:
                        d.act[:] = act[i]
                    d.ctrl[:] = ctrl[i]
                    d.qacc_warmstart[:] = warm[i]
                    try:
                        env_jacobians(models[i], d, jac.A[i], jac.B[i])
                    except Exception:  # an env we could not differentiate passes no gradient
                        jac.A[i] = jac.B[i] = np.nan
                    with lock:
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            jac.done.set()
                self._add_time("fd", (time.perf_counter() - t0) / (workers + 1))
            finally:
                self._scratch.put(d)

        for _ in range(workers):
            self._fd_pool.submit(work)
        jac.help = work

    def _map(self, fn) -> list:
        """``fn(indices)`` on every thread (the caller's included), all drawing from one env iterator.

        ``next`` on a shared ``range`` iterator is atomic under the GIL, so each env is taken once.
        """
        indices = iter(range(self.num_envs))
        if self._pool is None:
            return [fn(indices)]
        futures = [self._pool.submit(fn, indices) for _ in range(self.threads - 1)]
        try:
            mine = fn(indices)
        finally:  # never leave a worker touching the MjData after returning, even on an error
            theirs = [future.result() for future in futures]
        return [mine, *theirs]

    def step(
        self,
        qpos: np.ndarray,
        qvel: np.ndarray,
        act: np.ndarray,
        ctrl: np.ndarray,
        jacobians: bool = False,
    ) -> StepOutput:
        """Advance every env one control step (``substeps`` ``mj_step``) from the given state and
        controls (float64 arrays)."""
        n, models = self.num_envs, self.models
        out = StepOutput(
            qpos=np.empty((n, self.nq)),
            qvel=np.empty((n, self.nv)),
            act=np.empty((n, self.na)),
            diverged=np.zeros(n, dtype=bool),
        )
        hybrid = self.hybrid if jacobians else None
        caps = [hybrid.new_capture(n) for _ in range(self.jacobian_steps)] if hybrid is not None else None
        cap = caps[0] if caps is not None else None
        overlap = jacobians and self.fd.overlap and hybrid is None
        inline = jacobians and not overlap and hybrid is None
        if jacobians:
            out.jacobians = Jacobians(
                np.empty((n, self.state_dim, self.state_dim)),
                np.empty((n, self.state_dim, self.nu)),
                on_wait=lambda s: self._add_time("fd_wait", s),
            )
            A, B = out.jacobians.A, out.jacobians.B
        if overlap:  # the background threads read these after step() returns: own copies
            qpos, qvel, act, ctrl = (np.array(x, dtype=np.float64) for x in (qpos, qvel, act, ctrl))
            warm = np.empty((n, self.nv))
        datas, views, na, jacobian_models = self.datas, self._views, self.na, self.jacobian_models
        # The hybrid capture reads the simulated step itself (or retakes it with the gradient model) in
        # the stepping thread, overlapped or not: in a background thread its ~25 short calls, each
        # giving up and taking back the GIL, would queue behind the caller's Python at every one.
        own_step = self._own_step
        perf_counter, fd_call, step_call = time.perf_counter, self._env_jacobians, mujoco.mj_step
        substeps = self.substeps

        def work(indices) -> tuple[float, float]:
            scratch = self._step_scratch.get() if cap is not None and not own_step else None
            try:
                return steps(indices, scratch)
            finally:
                if scratch is not None:
                    self._step_scratch.put(scratch)

        def steps(indices, scratch) -> tuple[float, float]:
            t_fd = t_step = 0.0
            for i in indices:
                d, m = datas[i], models[i]
                d_qpos, d_qvel, d_act, d_ctrl, warning = views[i]
                d_qpos[:] = qpos[i]
                d_qvel[:] = qvel[i]
                if na:
                    d_act[:] = act[i]
                d_ctrl[:] = ctrl[i]
                warnings_before = warning[_FATAL_INDEX].sum()
                t0 = perf_counter()
                if inline:  # restores d's state, warm-start included
                    fd_call(jacobian_models[i], d, A[i], B[i])
                elif overlap:
                    warm[i] = d.qacc_warmstart
                elif cap is not None:
                    hybrid.before_step(cap, i, m, d)
                t1 = perf_counter()
                step_call(m, d, substeps)
                t2 = perf_counter()
                if cap is not None:
                    if own_step:
                        hybrid.capture(cap, i, m, d)
                    else:
                        hybrid.step_and_capture_chain(caps, i, scratch)
                    t_fd += perf_counter() - t2
                t_fd += t1 - t0
                t_step += t2 - t1
                out.qpos[i] = d_qpos
                out.qvel[i] = d_qvel
                if na:
                    out.act[i] = d_act
                out.diverged[i] = warning[_FATAL_INDEX].sum() > warnings_before
            return t_fd, t_step

        # Overlapped, the spare cores are computing Jacobians: stepping on the caller's thread alone
        # does not fight them for the cores (measured: 17 -> 54 ms per iteration when it did).
        alone = overlap or (cap is not None and self.fd.overlap)
        times = [work(iter(range(n)))] if alone else self._map(work)
        fd_inline = sum(t[0] for t in times) / len(times)
        self._add_time("fd", fd_inline)
        self._add_time("fd_wait", fd_inline)  # inline Jacobians block the caller for all their time
        self._add_time("step", sum(t[1] for t in times) / len(times))
        finite = np.isfinite(out.qpos).all(1) & np.isfinite(out.qvel).all(1)
        exploding = np.abs(np.nan_to_num(out.qvel, nan=np.inf)).max(1, initial=0.0) > self.max_qvel
        out.diverged |= ~finite | exploding
        if overlap:
            self._submit_jacobians(out.jacobians, (qpos, qvel, act, ctrl, warm))
        elif cap is not None:
            self._hybrid_jacobians(out.jacobians, caps, background=self.fd.overlap)
        return out
