"""The inference interface every backend offers: validated single-observation ``infer`` -> action chunk."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod

import numpy as np

from rfo_ros.runtime.metadata import ModelMetadata

PROVIDERS = ("auto", "cuda", "cpu")


class GpuUnavailableError(RuntimeError):
    """A GPU was required (``require_gpu=True`` or ``provider="cuda"``) but the backend runs on CPU."""


class InferenceError(RuntimeError):
    """The model produced a non-finite action chunk."""


class Policy(ABC):
    """Batch-1 inference on pre-allocated float32 buffers.

    Subclasses set ``provider`` (the execution provider actually in use) and implement ``_execute``,
    which runs the graph on the buffers ``self.buffers`` (name -> (1, ...) float32, in
    ``metadata.input_names`` order) and returns the chunk (C, m).
    """

    provider: str

    def __init__(self, metadata: ModelMetadata, seed: int | None = 0) -> None:
        self.metadata = metadata
        self.rng = np.random.default_rng(seed)
        self.buffers = {name: np.zeros(shape, np.float32) for name, shape in metadata.input_shapes(1).items()}

    @abstractmethod
    def _execute(self) -> np.ndarray:
        """Run the graph on ``self.buffers``; the action chunk (C, m), any float dtype."""

    def infer(
        self,
        observation: np.ndarray,
        noise: np.ndarray | None = None,
        image: np.ndarray | None = None,
        committed: np.ndarray | None = None,
        committed_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        """One action chunk (C, m) float64 in actuator units, in ``metadata.joint_names`` order.

        Args:
            observation: (obs_dim,) raw observation as laid out in ``metadata.obs_layout``.
            noise: (C, m) standard-normal flow/Gaussian noise; ``None`` draws it from ``self.rng``.
                Zero-noise models take none (their noise is a constant 0 inside the graph).
            image: (c, h, w) float32 pixels, required exactly when ``metadata.image`` is set.
            committed, committed_weight: (C, m) actuator commands and (C,) weights in [0, 1] to inpaint
                (models exported with ``--inpainting`` only); omitted, nothing is inpainted.
        Raises:
            ValueError: wrong shape, non-numeric or non-finite input, or an input the model has no use for.
            InferenceError: the model returned non-finite values.
        """
        meta = self.metadata
        _load(self.buffers["observation"], observation, "observation")
        if meta.zero_noise:
            if noise is not None:
                raise ValueError(f"{meta.source} is a zero-noise model: it takes no noise input")
        elif noise is None:
            self.rng.standard_normal(dtype=np.float32, out=self.buffers["noise"][0])
        else:
            _load(self.buffers["noise"], noise, "noise")
        if meta.image is not None:
            if image is None:
                raise ValueError(
                    f"{meta.source} needs an image {meta.image.shape} (encoding {meta.image.encoding})"
                )
            _load(self.buffers["image"], image, "image")
        elif image is not None:
            raise ValueError(f"{meta.source} has no image input")
        if meta.inpainting:
            if (committed is None) != (committed_weight is None):
                raise ValueError("committed and committed_weight go together")
            if committed is None:
                self.buffers["committed_weight"][0] = 0.0
            else:
                _load(self.buffers["committed"], committed, "committed")
                _load(self.buffers["committed_weight"], committed_weight, "committed_weight")
                if ((self.buffers["committed_weight"] < 0) | (self.buffers["committed_weight"] > 1)).any():
                    raise ValueError("committed_weight must lie in [0, 1]")
        elif committed is not None or committed_weight is not None:
            raise ValueError(
                f"{meta.source} was exported without --inpainting: it takes no committed actions"
            )
        chunk = np.asarray(self._execute(), dtype=np.float64).reshape(meta.chunk, meta.action_dim)
        if not np.isfinite(chunk).all():
            raise InferenceError(f"{meta.source} returned a non-finite action chunk: {chunk.tolist()}")
        return chunk

    def warm_up(self, runs: int) -> None:
        """Run the graph ``runs`` times on the current buffers (allocations, kernel choice, graph capture)."""
        for _ in range(runs):
            self._execute()


def _load(buffer: np.ndarray, value, name: str) -> None:
    """Copy ``value`` into ``buffer[0]`` after checking its shape, kind and finiteness."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} is not an array: {exc}") from exc
    if arr.shape != buffer.shape[1:]:
        raise ValueError(f"{name} must have shape {buffer.shape[1:]}, got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported just below
        np.copyto(buffer[0], arr, casting="unsafe")
    if not np.isfinite(buffer).all():
        bad = np.argwhere(~np.isfinite(buffer[0]))[:5].tolist()
        raise ValueError(f"{name} has non-finite (or float32-overflowing) entries at {bad}")


def make_policy(path: str | os.PathLike, backend: str = "onnx", **kwargs) -> Policy:
    """``backend="onnx"``: ``OrtPolicy(path to .onnx)``; ``"torch"``: ``TorchPolicy(path to a checkpoint)``.

    Keyword arguments go to the backend (both take ``provider``, ``require_gpu`` and ``seed``).
    """
    if backend == "onnx":
        from rfo_ros.runtime.ort_model import OrtPolicy

        return OrtPolicy(path, **kwargs)
    if backend == "torch":
        from rfo_ros.runtime.torch_model import TorchPolicy

        return TorchPolicy(path, **kwargs)
    raise ValueError(f"unknown policy backend {backend!r}; choose 'onnx' or 'torch'")


def measure_model_latency(
    policy: Policy, n: int = 1000, warmup: int = 20, seed: int = 0, rate_hz: float = 0.0
) -> dict[str, float]:
    """Latency of ``policy.infer`` (validation, noise draw and graph) over ``n`` calls, in milliseconds.

    Inputs are random but fixed (drawn once). ``p50_ms``/``p90_ms``/``p99_ms``/``max_ms``/``mean_ms`` are
    wall-clock; ``cpu_p50_ms``/``cpu_p99_ms`` are the calling thread's CPU time, which leaves out time
    the OS gave to other processes (equal to wall time on an idle core for single-threaded backends such
    as ORT on CPU with ``threads=1``; an undercount for multi-threaded ones). ``n`` is returned too.
    ``rate_hz`` > 0 paces the calls (one per period, sleeping in between) as a control loop does: an idle
    core and cold caches make each call slower than back to back, and a node's call is paced.
    """
    meta, rng = policy.metadata, np.random.default_rng(seed)
    obs = rng.standard_normal(meta.obs_dim).astype(np.float32)
    image = rng.random(meta.image.shape, dtype=np.float32) if meta.image else None
    for _ in range(warmup):
        policy.infer(obs, image=image)
    wall, cpu = np.empty(n), np.empty(n)
    period_ns = int(1e9 / rate_hz) if rate_hz > 0 else 0
    next_ns = time.perf_counter_ns()
    for i in range(n):
        if period_ns:
            next_ns += period_ns
            time.sleep(max(0.0, (next_ns - time.perf_counter_ns()) / 1e9))
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        policy.infer(obs, image=image)
        cpu[i], wall[i] = time.thread_time_ns() - c0, time.perf_counter_ns() - w0
    wall, cpu = wall / 1e6, cpu / 1e6
    p50, p90, p99 = np.percentile(wall, [50, 90, 99])
    cpu50, cpu99 = np.percentile(cpu, [50, 99])
    return {
        "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "max_ms": float(wall.max()),
        "mean_ms": float(wall.mean()), "cpu_p50_ms": float(cpu50), "cpu_p99_ms": float(cpu99), "n": n,
    }  # fmt: skip
