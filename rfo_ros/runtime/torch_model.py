"""torch backend: the same graph module export traces, run by torch (for GPUs without onnxruntime-gpu).

It loads a checkpoint (not an .onnx file), rebuilds ``ExportModule`` and the same ``ModelMetadata`` the
export would write, so a node sees one contract whichever backend it uses. On CUDA the fixed-shape
batch-1 forward can be captured once in a ``torch.cuda.CUDAGraph`` and replayed per call.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from rfo_ros.runtime.policy import PROVIDERS, GpuUnavailableError, Policy

log = logging.getLogger(__name__)


class TorchPolicy(Policy):
    """A checkpoint's policy on torch, batch 1; ``infer`` as ``OrtPolicy.infer``.

    Args:
        checkpoint: checkpoint file written by the trainer.
        provider: "auto" (CUDA if available, else CPU), "cuda" (or ``GpuUnavailableError``) or "cpu".
        require_gpu: with "auto", raise instead of running on CPU.
        seed: noise generator seed (the same numpy stream as ``OrtPolicy`` with the same seed).
        cuda_graph: capture the forward in a CUDA graph on CUDA.
        zero_noise, steps: as for ``rfo_ros.export`` (deterministic mode; flow steps override).
        task: the task object (default: built from the checkpoint's task name).
        warmup: forward runs at construction (before graph capture on CUDA).

    ``provider`` is "torch-cuda-graph", "torch-cuda" or "torch-cpu".
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        provider: str = "auto",
        require_gpu: bool = False,
        seed: int | None = 0,
        cuda_graph: bool = True,
        zero_noise: bool = False,
        steps: int | None = None,
        task=None,
        warmup: int = 3,
    ) -> None:
        from rfo_ros.runtime.prepare import prepare  # torch + MuJoCo: imported only by this backend

        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; choose one of {PROVIDERS}")
        if provider == "cpu" and require_gpu:
            raise ValueError("require_gpu=True contradicts provider='cpu'")
        self.fallback_reason = None
        if provider != "cpu" and not torch.cuda.is_available():
            why = f"torch {torch.__version__} sees no CUDA device"
            if require_gpu or provider == "cuda":
                raise GpuUnavailableError(f"GPU inference requested for {checkpoint} but {why}")
            self.fallback_reason = why
            log.warning("running %s on CPU: %s", checkpoint, why)
        self.device = torch.device("cuda" if provider != "cpu" and torch.cuda.is_available() else "cpu")
        module, metadata, _ = prepare(checkpoint, zero_noise=zero_noise, steps=steps, task=task)
        super().__init__(metadata, seed)
        self.module = module.to(self.device)
        self._inputs = [torch.from_numpy(buf).to(self.device) for buf in self.buffers.values()]
        self._graph: torch.cuda.CUDAGraph | None = None
        self.warm_up(warmup)
        if self.device.type == "cuda" and cuda_graph:
            self._capture()
        self.provider = "torch-cuda-graph" if self._graph else f"torch-{self.device.type}"

    @torch.no_grad()
    def _capture(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.module(*self._inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._static_out = self.module(*self._inputs)
        self._graph = graph

    @torch.no_grad()
    def _execute(self) -> np.ndarray:
        for tensor, buf in zip(self._inputs, self.buffers.values(), strict=True):
            tensor.copy_(torch.from_numpy(buf))
        if self._graph is not None:
            self._graph.replay()
            out = self._static_out
        else:
            out = self.module(*self._inputs)
        return out[0].cpu().numpy()
