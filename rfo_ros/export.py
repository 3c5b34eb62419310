"""Checkpoint -> ONNX policy with its contract in the metadata, checked against torch before it is kept.

    python -m rfo_ros.export CHECKPOINT -o models/<name>.onnx [--zero-noise] [--steps K]

The graph (``rfo_ros.runtime.graph.ExportModule``) holds the observation normalisation, the flow ODE
unrolled into K fixed steps, tanh and the task's action map, so its output ``action_chunk`` (B, C, m)
is in actuator units. Inputs: ``observation`` (B, P), ``noise`` (B, C, m) unless ``--zero-noise``
(then the noise is a constant 0), ``image`` (B, c, h, w) for image policies; B is dynamic.

After writing to a temporary file the export (1) refuses Loop/If/Scan nodes, (2) runs the model in
ONNX Runtime and the checkpoint's torch actor (reloaded from disk) on the same random observations and
noise and requires ``max |ort - torch| <= PARITY_ATOL`` in actuator units, (3) reads the contract back
with the runtime's parser; only then is the file renamed into place.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from rfo_ros.checkpoint import CheckpointError
from rfo_ros.envs import Task
from rfo_ros.nets.actor import Actor
from rfo_ros.runtime.graph import ExportModule
from rfo_ros.runtime.metadata import OUTPUT_NAME, ModelMetadata
from rfo_ros.runtime.ort_model import load_metadata, open_session, session_options
from rfo_ros.runtime.prepare import OPSET, ExportError, load_checkpoint_actor, prepare

#: Largest accepted |ONNX Runtime - torch| difference, in actuator units.
PARITY_ATOL = 1e-5
#: Ops that would put control flow in the graph (and defeat CUDA-graph capture).
FORBIDDEN_OPS = frozenset({"Loop", "If", "Scan"})


@dataclass
class ExportReport:
    path: Path
    size_bytes: int
    parity_max_abs_error: float
    parity_atol: float
    opset: int
    n_nodes: int
    op_counts: dict[str, int]
    inputs: dict[str, tuple]
    metadata: ModelMetadata = field(repr=False)
    seconds: float = 0.0

    def summary(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.op_counts.items(), key=lambda kv: -kv[1]))
        ins = ", ".join(f"{name} {list(shape)}" for name, shape in self.inputs.items())
        meta = self.metadata
        return (
            f"wrote {self.path} ({self.size_bytes / 1024:.1f} KiB) in {self.seconds:.1f} s\n"
            f"  task {meta.task}, {meta.policy_kind} ({meta.algo}), K={meta.flow_steps}, C={meta.chunk}, "
            f"m={meta.action_dim}, zero_noise={meta.zero_noise}, dt={meta.dt}\n"
            f"  inputs: {ins}; output: {OUTPUT_NAME} [batch, {meta.chunk}, {meta.action_dim}]\n"
            f"  parity vs torch: max |err| = {self.parity_max_abs_error:.2e} "
            f"(tolerance {self.parity_atol:.0e})\n"
            f"  opset {self.opset}, {self.n_nodes} nodes: {ops}"
        )


# --- tracing and checks ------------------------------------------------------------------------------
def trace(module: ExportModule, opset: int = OPSET) -> onnx.ModelProto:
    """The module as an ONNX model, batch axis dynamic (legacy TorchScript exporter: no onnxscript)."""
    example = tuple(torch.randn(shape) for shape in module.input_shapes(batch=2).values())
    dynamic = {name: {0: "batch"} for name in (*module.input_names, OUTPUT_NAME)}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*")
        # The gait prior's phases and lifts are constants of the graph, as intended.
        warnings.filterwarnings("ignore", message=".*torch.as_tensor results are registered as constants.*")
        torch.onnx.export(
            module, example, buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=module.input_names, output_names=[OUTPUT_NAME], dynamic_axes=dynamic,
        )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def op_counts(model: onnx.ModelProto) -> Counter:
    """Node types over the graph and every subgraph."""
    counts: Counter = Counter()
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                stack += [attr.g] if attr.HasField("g") else []
                stack += list(attr.graphs)
    return counts


def parity_error(
    path: Path, module: ExportModule, reference: Actor, task: Task, n: int = 64, seed: int = 0
) -> float:
    """max |ONNX Runtime - torch actor| in actuator units over ``n`` random observations (+1 at batch 1).

    Observations are drawn around the normaliser's statistics (2σ wide, so clipping is exercised too).
    """
    gen = torch.Generator().manual_seed(seed)
    norm = reference.normalizer
    obs = norm.mean + 2.0 * torch.sqrt(norm.var + norm.eps) * torch.randn(n, reference.obs_dim, generator=gen)
    noise = torch.randn(n, module.chunk, module.action_dim, generator=gen)
    if module.zero_noise:
        noise.zero_()
    with torch.no_grad():
        action = reference(obs, noise)[0].reshape(n * module.chunk, module.action_dim)
    # The task's action map, and the gait prior a robot with one adds at each step of the chunk from
    # the observation's clock (the training env adds it from its own step count).
    amap = task.action_map()
    clock = obs[:, module.clock].double().numpy() if module.gait is not None else None
    prior = 0.0 if clock is None else module.gait.chunk_prior(clock, module.chunk)
    action = action.reshape(n, module.chunk, module.action_dim).double().numpy()
    expected = np.clip(amap.offset + prior + amap.scale * action, amap.low, amap.high)
    feeds = {"observation": obs[:, : module.obs_dim], "noise": noise}
    if module.image_shape:
        feeds["image"] = obs[:, module.obs_dim :].reshape(n, *module.image_shape)
    # Inpainting at weight 0 must be the plain flow, which the trainer's actor gives.
    feeds["committed"] = torch.as_tensor(expected)
    feeds["committed_weight"] = torch.zeros(n, module.chunk)
    feeds = {name: feeds[name].numpy().astype(np.float32) for name in module.input_names}
    session = open_session(path, options=session_options())
    got = session.run([OUTPUT_NAME], feeds)[0]
    got_one = session.run([OUTPUT_NAME], {name: value[:1] for name, value in feeds.items()})[0]
    error = max(np.abs(got - expected).max(), np.abs(got_one - expected[:1]).max())
    if module.inpainting:  # and at random weights, ONNX Runtime must match the torch graph module
        feeds["committed"] = np.flip(feeds["committed"], 0).copy()
        feeds["committed_weight"] = torch.rand(n, module.chunk, generator=gen).numpy()
        with torch.no_grad():
            want = module(*(torch.from_numpy(feeds[name]) for name in module.input_names)).numpy()
        error = max(error, np.abs(session.run([OUTPUT_NAME], feeds)[0] - want).max())
    return float(error)


def reference_actor(checkpoint: str | os.PathLike, steps: int | None) -> Actor:
    """The torch actor as the trainer would run it, freshly loaded from disk (flow steps overridden)."""
    actor, _ = load_checkpoint_actor(checkpoint)
    if steps is not None:
        actor.policy.steps = steps
    return actor


# --- export ------------------------------------------------------------------------------------------
def export_onnx(
    checkpoint_path: str | os.PathLike,
    out_path: str | os.PathLike,
    zero_noise: bool = False,
    steps: int | None = None,
    task: Task | None = None,
    inpainting: bool = False,
) -> ExportReport:
    """Export ``checkpoint_path`` to ``out_path`` (atomically; nothing is left behind on failure).

    Raises ``CheckpointError`` for a missing/unreadable checkpoint and ``ExportError`` for a failed check.
    """
    start, out_path = time.perf_counter(), Path(out_path)
    module, metadata, task = prepare(
        checkpoint_path, zero_noise=zero_noise, steps=steps, task=task, inpainting=inpainting
    )
    model = trace(module)
    onnx.helper.set_model_props(model, metadata.to_props())
    model.producer_name, model.producer_version = "rfo_ros.export", metadata.format
    model.doc_string = f"rfo_ros policy for task {metadata.task} ({metadata.policy_kind}, {metadata.algo})"
    counts = op_counts(model)
    if forbidden := sorted(FORBIDDEN_OPS & set(counts)):
        raise ExportError(f"graph contains control-flow ops {forbidden}; the flow must be unrolled")
    onnx.checker.check_model(model, full_check=True)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        error = parity_error(tmp, module, reference_actor(checkpoint_path, steps), task)
        if not error <= PARITY_ATOL:
            raise ExportError(
                f"ONNX Runtime and torch disagree by {error:.3e} (> {PARITY_ATOL:.0e}) in actuator units; "
                f"not writing {out_path}"
            )
        load_metadata(tmp)  # the runtime must accept what we wrote
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model is installed and read by other users
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(
        path=out_path,
        size_bytes=out_path.stat().st_size,
        parity_max_abs_error=error,
        parity_atol=PARITY_ATOL,
        opset=OPSET,
        n_nodes=sum(counts.values()),
        op_counts=dict(counts),
        inputs=module.input_shapes(batch="batch"),
        metadata=load_metadata(out_path),
        seconds=time.perf_counter() - start,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rfo_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint file written by rfo_ros.train")
    parser.add_argument(
        "-o", "--output", required=True, help="output .onnx path (e.g. models/quadruped.onnx)"
    )
    parser.add_argument(
        "--zero-noise", action="store_true", help="deterministic policy: noise is a constant 0"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="flow integration steps K (default: as trained)"
    )
    parser.add_argument(
        "--inpainting",
        action="store_true",
        help="add the committed/committed_weight inputs (real-time chunk execution, flow policies)",
    )
    args = parser.parse_args(argv)
    try:
        report = export_onnx(
            args.checkpoint,
            args.output,
            zero_noise=args.zero_noise,
            steps=args.steps,
            inpainting=args.inpainting,
        )
    except (CheckpointError, ExportError) as exc:
        print(f"rfo_export: error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
