"""Benchmarks: ``python -m rfo_ros.bench {sim,train,learn,latency,scale,chunks,robust,soak,twin,gpu} ...``.

Each subcommand is a module of this package exposing ``add_arguments(parser)`` and ``run(args) -> int``;
only the chosen one is imported, so one benchmark's dependencies never load with another's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

#: subcommand -> (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("rfo_ros.bench.sim", "simulator throughput: plain vs gradient steps, overhead over bare FD"),
    "train": ("rfo_ros.bench.train", "training throughput and time split, Jacobians inline vs overlapped"),
    "learn": ("rfo_ros.bench.learn", "training runs per task x algorithm x seed, results table and plots"),
    "latency": ("rfo_ros.bench.latency", "policy inference latency (ONNX Runtime / torch)"),
    "scale": ("rfo_ros.bench.scale", "training env steps/s: 1 process x T threads vs P torchrun ranks"),
    "chunks": ("rfo_ros.bench.chunks", "command jumps at chunk boundaries per chunk-execution mode"),
    "soak": ("rfo_ros.bench.soak", "a policy node for minutes: memory, latency per minute, missed plans"),
    "robust": ("rfo_ros.bench.robust", "speed, falls and tracking per policy under named perturbations"),
    "twin": ("rfo_ros.bench.twin", "a gradient twin's gradient against the exact one: cosines, error, cost"),
    "gpu": ("rfo_ros.bench.gpu", "the GPU check: inference, training, scaling and CUDA tests, one report"),
}


def train_launcher(procs: int = 1) -> list[str]:
    """The command that starts ``rfo_ros.train`` in ``procs`` processes: plain Python for one, torchrun
    (``torch.distributed.run --standalone``, a free local port) for more. Arguments follow."""
    if procs <= 1:
        return [sys.executable, "-m", "rfo_ros.train"]
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
        "-m", "rfo_ros.train",
    ]  # fmt: skip


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<8} {description}" for name, (_, description) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m rfo_ros.bench",
        description="rfo_ros benchmarks",
        epilog=f"commands:\n{listing}\n\n`python -m rfo_ros.bench COMMAND --help` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="which benchmark to run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to ``rfo_ros.bench.<command>``; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    top.parse_args(argv[:1])  # validates the command name (exits 2 listing the choices)
    command, rest = argv[0], argv[1:]
    module_name, description = COMMANDS[command]
    module = import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m rfo_ros.bench {command}", description=description)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)
