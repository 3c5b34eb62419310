"""ONNX Runtime backend: CUDA (IO binding + CUDA graph) when a GPU really runs the model, else CPU.

``onnxruntime-gpu`` on a machine whose GPU/driver/CUDA libraries are unusable still lists the CUDA
provider, logs an error and silently runs on CPU; the provider actually in use is therefore read back
from ``session.get_providers()`` after the session exists, never assumed from the request.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rfo_ros.runtime.metadata import OUTPUT_NAME, ModelError, ModelMetadata
from rfo_ros.runtime.policy import PROVIDERS, GpuUnavailableError, Policy

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def cuda_installed() -> bool:
    """Whether this onnxruntime build has the CUDA provider (says nothing about a usable GPU)."""
    return CUDA in ort.get_available_providers()


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Low-latency batch-1 options: ``threads`` intra-op threads, sequential, all graph optimisations."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    return opts


def open_session(
    path: str | os.PathLike,
    providers: list | None = None,
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An InferenceSession, with missing/unreadable/non-ONNX files reported as ``ModelError``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"policy model not found: {path}")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers or [CPU])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise ModelError(f"{path} is not a loadable ONNX model (corrupt or truncated?): {exc}") from exc


def metadata_from_session(session: ort.InferenceSession, source: str | os.PathLike) -> ModelMetadata:
    """The model's rfo_ros contract, checked against the session's actual inputs and outputs."""
    meta = ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, source)
    meta.check_io(
        [(i.name, i.shape) for i in session.get_inputs()], [(o.name, o.shape) for o in session.get_outputs()]
    )
    for arg in (*session.get_inputs(), *session.get_outputs()):
        if arg.type != "tensor(float)":
            raise ModelError(f"{source}: {arg.name!r} is {arg.type}, expected tensor(float)")
    return meta


def load_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read and validate a model's contract (opens a CPU session; nothing runs)."""
    return metadata_from_session(open_session(path, options=session_options()), path)


class OrtPolicy(Policy):
    """An exported policy on ONNX Runtime, batch 1.

    Args:
        path: the ``.onnx`` file written by ``rfo_ros.export``.
        provider: "auto" (CUDA if it really runs, else CPU with a warning), "cuda" (CUDA or
            ``GpuUnavailableError``) or "cpu".
        require_gpu: with "auto", raise ``GpuUnavailableError`` instead of falling back to CPU.
        seed: seed of the noise generator used when ``infer`` gets no noise (None: from the OS).
        io_binding: bind pre-allocated OrtValues (default: on CUDA; always with CUDA graphs).
        cuda_graph: capture the graph in a CUDA graph on CUDA (set up again without it if that fails).
        device_id: CUDA device.
        threads: CPU intra-op threads (1 is fastest for these small graphs).
        warmup: graph runs at construction.

    ``provider`` is the execution provider in use ("CUDAExecutionProvider" or "CPUExecutionProvider");
    ``fallback_reason`` says why a GPU request ended on CPU (else None).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "auto",
        require_gpu: bool = False,
        seed: int | None = 0,
        io_binding: bool | None = None,
        cuda_graph: bool = True,
        device_id: int = 0,
        threads: int = 1,
        warmup: int = 10,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; choose one of {PROVIDERS}")
        if provider == "cpu" and require_gpu:
            raise ValueError("require_gpu=True contradicts provider='cpu'")
        self.path, self.device_id, self.fallback_reason = Path(path), device_id, None
        self._threads, self._seed = threads, seed
        settings = (provider, require_gpu, io_binding, warmup)
        try:
            self._start(*settings, cuda_graph=cuda_graph and provider != "cpu")
        except GpuUnavailableError:
            raise
        except Exception as exc:  # CUDA-graph capture (or session set-up with it) failed: once more without
            if not (cuda_graph and provider != "cpu" and cuda_installed()):
                raise
            log.warning("CUDA graph set-up failed for %s (%s); retrying without CUDA graphs", self.path, exc)
            self._start(*settings, cuda_graph=False)

    def _start(
        self, provider: str, require_gpu: bool, io_binding: bool | None, warmup: int, cuda_graph: bool
    ) -> None:
        """Session, provider check, contract, buffers, bindings, warm-up (CUDA-graph capture)."""
        self.session = self._create(provider, cuda_graph, self._threads)
        self.provider = self.session.get_providers()[0]
        if provider != "cpu" and self.provider != CUDA:
            self._gpu_fallback(require_gpu or provider == "cuda")
        Policy.__init__(self, metadata_from_session(self.session, self.path), self._seed)
        self.cuda_graph = cuda_graph and self.provider == CUDA
        # CUDA graphs replay fixed device addresses: inputs must be bound OrtValues updated in place.
        self.io_binding = self.cuda_graph or ((self.provider == CUDA) if io_binding is None else io_binding)
        self._run_options = ort.RunOptions()
        self._feeds = dict(self.buffers)
        self._bind()
        self.warm_up(max(warmup, 2 if self.cuda_graph else 0))

    def _create(self, provider: str, cuda_graph: bool, threads: int) -> ort.InferenceSession:
        providers: list = [CPU]
        # A CPU-only build would only log an error for CUDA; onnxruntime-gpu lists it even with no GPU,
        # so the provider in use is checked after creation either way.
        if provider != "cpu" and cuda_installed():
            cuda_opts = {"device_id": str(self.device_id), "enable_cuda_graph": "1" if cuda_graph else "0"}
            providers = [(CUDA, cuda_opts), CPU]
        return open_session(self.path, providers, session_options(threads))

    def _gpu_fallback(self, required: bool) -> None:
        if not cuda_installed():
            why = "this onnxruntime build has no CUDA provider (install onnxruntime-gpu, and not onnxruntime)"
        else:
            why = (
                "the CUDA provider failed to start (no GPU, driver or CUDA/cuDNN libraries; see the ORT log)"
            )
        if required:
            raise GpuUnavailableError(
                f"GPU inference requested for {self.path} but {why}; active: {self.provider}"
            )
        self.fallback_reason = why
        log.warning("running %s on %s: %s", self.path, self.provider, why)

    def _bind(self) -> None:
        """Bind OrtValues at fixed addresses (updated in place each call), or prepare plain feeds."""
        if not self.io_binding:
            return
        device = "cuda" if self.provider == CUDA else "cpu"
        meta, new = self.metadata, ort.OrtValue.ortvalue_from_shape_and_type
        self._values = {
            name: new(buf.shape, np.float32, device, self.device_id) for name, buf in self.buffers.items()
        }
        self._out = new((1, meta.chunk, meta.action_dim), np.float32, device, self.device_id)
        self._binding = self.session.io_binding()
        for name, value in self._values.items():
            self._binding.bind_ortvalue_input(name, value)
        self._binding.bind_ortvalue_output(OUTPUT_NAME, self._out)

    def _execute(self) -> np.ndarray:
        if not self.io_binding:
            return self.session.run([OUTPUT_NAME], self._feeds, self._run_options)[0][0]
        for name, value in self._values.items():
            value.update_inplace(self.buffers[name])
        self.session.run_with_iobinding(self._binding, self._run_options)
        return self._out.numpy()[0]
