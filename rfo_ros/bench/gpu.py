"""``python -m rfo_ros.bench gpu [--dry-run] [--wheels DIR] [--out PATH]``: the GPU check in one command.

For a GPU machine lent for a few minutes, offline, with its own Python and CUDA torch: installs what
rfo_ros lacks there from a folder of wheels (``--wheels``, into ``<out folder>/site`` with ``--target``,
so the machine's own packages are never touched), then runs each section in a process of its own, under
a time budget, and writes ONE JSON report (``--out``):

- ``environment``: Python, torch, CUDA device, onnxruntime and its providers, MuJoCo, CPU count;
- ``inference``: flow-ODE policy latency (``measure_model_latency``: p50/p99 of ``infer``) through the
  torch backend (CUDA graph, eager CUDA, CPU) and ONNX Runtime (CPU provider; CUDA provider where it is
  installed, a line saying it is not otherwise), for an untrained K=8, C=8 policy and for the shipped
  model's architecture (``models/quadruped.onnx``: ORT runs the file itself; no checkpoint ships with it,
  so torch runs an untrained actor of the same layers, which costs the same time);
- ``training``: env steps/s with ``run.device: cuda`` (networks on the GPU, simulation on CPU threads)
  against ``run.device: cpu``, iterations interleaved in one process (``bench train``'s ``time_modes``);
- ``scale``: ``bench scale``'s runs with 1, 2, 4 and 8 torchrun ranks, envs and threads split evenly;
- ``tests``: pytest on ``tests/test_device.py`` (its CUDA tests run where CUDA is), outcome counts.

A section that fails or runs out of time records its error (and what it measured before) and the next
one starts; the report is rewritten after every section, so even a killed check leaves one. ``--dry-run``
runs every section at toy size (CPU where CUDA is absent, ranks 1 and 2, the CUDA tests only), well under
two minutes on two cores: it proves the command before a GPU is there.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: import name -> PyPI distribution: what the sections import beyond torch (which must be preinstalled:
#: a CUDA torch is GBs, no wheel folder brings it). matplotlib and tensorboard: the trainer's plot and log.
REQUIRED = {
    "numpy": "numpy",
    "yaml": "pyyaml",
    "pydantic": "pydantic",
    "mujoco": "mujoco",
    "torchdiffeq": "torchdiffeq",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "tensorboard": "tensorboard",
    "pytest": "pytest",
}


@dataclass(frozen=True)
class Plan:
    """Sizes and time budgets (seconds) of one check; the budgets sum to at most ``total_s``."""

    total_s: float
    budgets_s: dict[str, float]
    model_n: int  # measured infer calls per backend
    train_config: str
    train_sets: tuple[str, ...]
    train_iterations: int
    train_warmup: int
    scale_config: str
    scale_sets: tuple[str, ...]
    scale_ranks: tuple[int, ...]
    scale_envs: int  # in all, split over the ranks
    scale_seconds: float  # training wall time per run
    pytest_targets: tuple[str, ...]


_TINY = ("env.num_envs=4", "env.threads=1", "diff.horizon=4", "policy.hidden=[16]", "critic.hidden=[16]")
_CUDA_TESTS = tuple(
    f"tests/test_device.py::test_networks_train_on_cuda_and_resume[{algo}]"
    for algo in ("rfo", "sapo", "ppo", "fpo")
)

#: One H200 and 16 cores, 8 minutes in all (setup included: pip from local wheels takes seconds).
FULL = Plan(
    total_s=465.0,
    budgets_s={"environment": 30, "inference": 75, "training": 80, "scale": 180, "tests": 90},
    model_n=2000,
    train_config="config/train/quadruped_rfo.yaml",
    train_sets=(),
    train_iterations=6,
    train_warmup=2,
    scale_config="config/train/quadruped_rfo.yaml",
    scale_sets=(),
    scale_ranks=(1, 2, 4, 8),
    scale_envs=64,
    scale_seconds=15.0,
    pytest_targets=("tests/test_device.py",),
)

#: Toy sizes on any CPU: the same code paths, well under two minutes on two cores.
DRY = Plan(
    total_s=110.0,
    budgets_s={"environment": 20, "inference": 40, "training": 30, "scale": 60, "tests": 40},
    model_n=50,
    train_config="config/train/cartpole_rfo.yaml",
    train_sets=_TINY,
    train_iterations=1,
    train_warmup=1,
    scale_config="config/train/cartpole_rfo.yaml",
    scale_sets=tuple(s for s in _TINY if not s.startswith(("env.num_envs=", "env.threads="))),
    scale_ranks=(1, 2),
    scale_envs=4,
    scale_seconds=2.0,
    pytest_targets=_CUDA_TESTS,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/gpu_check/report.json", help="the JSON report")
    p.add_argument("--wheels", default=None, help="folder of wheels for what this Python lacks (offline)")
    p.add_argument("--dry-run", action="store_true", help="every section at toy size (any CPU machine)")
    p.add_argument("--section", default=None, help=argparse.SUPPRESS)  # internal: run one section
    p.add_argument("--section-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--budget-s", type=float, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    plan = DRY if args.dry_run else FULL
    if args.section:
        return _run_one_section(args.section, plan, Path(args.section_out), args.budget_s)
    return check(plan, Path(args.out), args.wheels, args.dry_run)


# --- the orchestrating process: setup, then one child process per section -----------------------------
def check(plan: Plan, out: Path, wheels: str | None, dry_run: bool) -> int:
    """Run every section under its budget and write the report to ``out``; 0 when every section ran."""
    start = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    site = out.parent / "site"
    report: dict = {
        "check": "rfo_ros GPU check (python -m rfo_ros.bench gpu)",
        "mode": "dry-run" if dry_run else "full",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "budget_s": plan.total_s,
        "setup": {},
        "sections": {},
    }
    try:
        report["setup"] = setup(wheels, site)
    except Exception as exc:  # e.g. pip hanging: the sections still run, on what the machine has
        report["setup"] = {"error": f"{type(exc).__name__}: {exc}"}
    _write(out, report)
    pythonpath = os.pathsep.join(p for p in (str(site), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    for name, budget in plan.budgets_s.items():
        left = plan.total_s - (time.monotonic() - start)
        if left < 5.0:  # a section needs its imports at least: skip rather than start and be killed
            result = {"status": "skipped", "reason": f"no time left of the {plan.total_s:.0f} s budget"}
        else:
            result = run_section(name, min(budget, left), dry_run, env)
        report["sections"][name] = result
        report["total_s"] = round(time.monotonic() - start, 1)
        _write(out, report)
        print(f"[gpu check] {name}: {result['status']} ({result.get('seconds', 0)} s)", flush=True)
    report["summary"] = summary(report["sections"])
    _write(out, report)
    print("\n".join(["[gpu check] summary:", *report["summary"], f"[gpu check] report: {out}"]))
    return 0 if all(s["status"] == "ok" for s in report["sections"].values()) else 1


def summary(sections: dict) -> list[str]:
    """The report's headline figures, one line each, and every section that did not run and why."""
    lines = [f"{name}: {s['status']}: {_last_line(s.get('error') or s.get('reason'))}"
             for name, s in sections.items() if s["status"] != "ok"]  # fmt: skip
    for model in ("K8_C8", "shipped"):
        for backend, r in sections.get("inference", {}).get(model, {}).get("backends", {}).items():
            if "p50_ms" in r:
                lines.append(
                    f"inference {model} {backend}: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms"
                )
    train = sections.get("training", {})
    if "steps_per_s" in train:
        rates, on = train["steps_per_s"], train["device"]["cuda"]
        lines.append(
            f"training env steps/s: run.device cuda (networks on {on}) {rates['cuda']:.0f}, "
            f"run.device cpu {rates['cpu']:.0f} (x{train['cuda_over_cpu']:.2f})"
        )
    for ranks, r in sections.get("scale", {}).get("ranks", {}).items():
        rate = r.get("env_steps_per_s")
        said = (
            f"{rate:.0f} env steps/s"
            if rate
            else f"{r['status']}: {_last_line(r.get('error') or r.get('reason'))}"
        )
        lines.append(f"scale {ranks} rank(s): {said}")
    if "counts" in sections.get("tests", {}):
        lines.append(f"tests/test_device.py: {sections['tests']['counts']}")
    return lines


def _last_line(text: str | None) -> str:
    """A message's last non-empty line (a traceback's exception), at most 200 characters."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def setup(wheels: str | None, site: Path) -> dict:
    """Which required modules this Python has; with ``wheels``, pip-install every distribution found there
    that is not installed, into ``site`` (``--no-index --no-deps --target``: offline, and the machine's own
    packages are never replaced). Returns what was present, installed and is still missing."""
    result: dict = {"python": sys.version.split()[0], "executable": sys.executable}
    if importlib.util.find_spec("torch") is None:
        result["torch"] = "missing: every section needs a preinstalled torch (no wheel folder brings CUDA)"
    missing = _missing_modules(site)
    result["missing_before"] = sorted(REQUIRED[m] for m in missing)
    if wheels and missing:
        result["install"] = _install_wheels(Path(wheels), site)
        missing = _missing_modules(site)
    elif missing:
        result["install"] = "no --wheels folder given: nothing installed"
    result["missing"] = sorted(REQUIRED[m] for m in missing)
    return result


def _missing_modules(site: Path) -> list[str]:
    """Required import names neither this Python nor ``site`` provides."""
    sys.path[:0] = [str(site)] if site.is_dir() and str(site) not in sys.path else []
    importlib.invalidate_caches()
    return [module for module in REQUIRED if importlib.util.find_spec(module) is None]


def _install_wheels(folder: Path, site: Path) -> dict:
    """pip-install the distributions of ``folder``'s wheels that are not installed; one pip call, then one
    per distribution if that fails (a wheel for another Python must not block the rest)."""
    if not folder.is_dir():
        return {"error": f"--wheels {folder}: no such folder"}
    wanted = sorted({_dist_name(w.name) for w in folder.glob("*.whl")} - _installed_dists())
    if not wanted:
        return {"installed": [], "note": f"every distribution in {folder} is installed already"}
    base = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
            "--no-deps", "--find-links", str(folder), "--target", str(site), "--upgrade"]  # fmt: skip
    done = subprocess.run([*base, *wanted], capture_output=True, text=True, timeout=180)
    if done.returncode == 0:
        return {"installed": wanted}
    installed, failed = [], {}
    for dist in wanted:
        one = subprocess.run([*base, dist], capture_output=True, text=True, timeout=60)
        if one.returncode == 0:
            installed.append(dist)
        else:
            failed[dist] = one.stderr.strip()[-300:]
    return {"installed": installed, "failed": failed}


def _dist_name(wheel: str) -> str:
    """A wheel file name's distribution, normalised (PEP 503): ``PyYAML-6.0-...whl`` -> ``pyyaml``."""
    return re.sub(r"[-_.]+", "-", wheel.split("-")[0]).lower()


def _installed_dists() -> set[str]:
    return {_dist_name(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}


def run_section(name: str, timeout: float, dry_run: bool, env: dict[str, str]) -> dict:
    """Run section ``name`` in a child process (its own session: a timeout kills its torchrun ranks and
    pytest too); its result file, plus status (ok, error, timeout), seconds and, on failure, the log tail."""
    with tempfile.TemporaryDirectory(prefix=f"rfo_gpu_{name}_") as tmp:
        out = Path(tmp) / "section.json"
        cmd = [sys.executable, "-m", "rfo_ros.bench", "gpu", "--section", name, "--section-out", str(out),
               "--budget-s", str(timeout), *(["--dry-run"] if dry_run else [])]  # fmt: skip
        t0 = time.monotonic()
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)  # fmt: skip
        try:
            log, _ = child.communicate(timeout=timeout)
            status = "ok" if child.returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            log, _ = child.communicate()
            status = "timeout"
        result = _read_json(out)
    if status == "ok":  # a section that could not run at all says so itself ("not run" and its reason)
        status = result.pop("status", status)
    head = {"status": status, "seconds": round(time.monotonic() - t0, 1), "budget_s": round(timeout, 1)}
    if status == "timeout":
        head["error"] = f"killed after its {timeout:.0f} s budget; what it had measured is kept below"
    elif status == "error":
        head["error"] = result.pop("error", None) or f"exit status {child.returncode}"
    if status != "ok":
        head["log_tail"] = (log or "")[-2000:]
    return {**head, **result}


def _write(path: Path, report: dict) -> None:
    """Write JSON atomically: a reader, or a kill mid-write, never sees half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(part, path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"result_file": f"unreadable: {exc}"} if path.exists() else {}


# --- inside a section's process -----------------------------------------------------------------------
class Saved(dict):
    """A dict written to ``path`` as JSON on every top-level assignment, so a killed section keeps what
    it measured before (assign a nested dict again after changing it)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def __setitem__(self, key: str, value) -> None:
        super().__setitem__(key, value)
        _write(self.path, self)

    def update(self, *args, **kwargs) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


def _run_one_section(name: str, plan: Plan, out: Path, budget_s: float | None) -> int:
    result = Saved(out)
    try:
        SECTIONS[name](plan, result, budget_s or plan.budgets_s[name])
    except (Exception, SystemExit) as exc:  # bench pieces raise SystemExit with their message
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback_tail"] = traceback.format_exc()[-1500:]
        return 1
    return 0


def environment(plan: Plan, out: Saved, budget_s: float) -> None:
    """What this machine offers: versions, the CUDA device, ONNX Runtime's providers."""
    import torch

    out["python"], out["platform"], out["cores"] = sys.version.split()[0], platform.platform(), _cores()
    out["torch"], out["cuda_available"] = torch.__version__, torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out["cuda_device"], out["torch_cuda"] = props.name, torch.version.cuda
        out["cuda_memory_gib"] = round(props.total_memory / 2**30, 1)
    else:
        out["cuda_device"] = _no_cuda_line(torch)
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    # Versions from the installed metadata: a package that fails to import still shows what is there.
    out["versions"] = {dist: _dist_version(dist) for dist in REQUIRED.values()}
    out["versions"] = {**out["versions"], "onnxruntime": _dist_version("onnxruntime", "onnxruntime-gpu")}
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()


def _dist_version(*names: str) -> str:
    """The installed version of the first of ``names`` that is installed, else "missing"."""
    for name in names:
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "missing"


def _cores() -> int:
    """CPU cores this process may run on (its affinity: a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0))


def _no_cuda_line(torch) -> str:
    return f"absent: torch {torch.__version__} sees no CUDA device"


def inference(plan: Plan, out: Saved, budget_s: float) -> None:
    """Latency per backend for an untrained K=8, C=8 flow policy and for the shipped model."""
    import torch

    from rfo_ros.bench.latency import untrained_checkpoint
    from rfo_ros.export import export_onnx

    out["torch_device"] = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        out["cuda"] = _no_cuda_line(torch) + ": the torch backend ran on the CPU only"
    out["ort_cuda"] = _ort_cuda_line()
    with tempfile.TemporaryDirectory(prefix="rfo_gpu_inference_") as tmp:
        checkpoint, task = untrained_checkpoint(Path(tmp) / "k8c8.pt", flow_steps=8, chunk=8)
        onnx_path = Path(tmp) / "k8c8.onnx"
        export_onnx(checkpoint, onnx_path, zero_noise=True, task=task)
        measured, _ = _backends(onnx_path, checkpoint, plan.model_n)
        out["K8_C8"] = {
            "model": "untrained flow policy, quadruped, K=8, C=8 (zero noise)",
            "backends": measured,
        }
        out["shipped"] = _shipped_model(Path(tmp), plan.model_n)


def _ort_cuda_line() -> str:
    try:
        import onnxruntime
    except ImportError as exc:
        return f"not measured: onnxruntime does not import ({exc})"
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return "installed: measured below as ort_cuda"
    return (
        f"not installed: onnxruntime {onnxruntime.__version__} offers {providers}, no CUDAExecutionProvider "
        "(onnxruntime-gpu is too large to bring as a wheel); the torch backend is the GPU path"
    )


def _shipped_model(tmp: Path, n: int) -> dict:
    """``models/quadruped.onnx`` on ONNX Runtime, and on torch an untrained actor with its layers (from
    ``models/quadruped.train.yaml``): no checkpoint ships, and latency does not depend on weight values."""
    import onnx

    from rfo_ros.bench.latency import untrained_checkpoint
    from rfo_ros.config import load_config
    from rfo_ros.paths import resolve_model_path
    from rfo_ros.runtime import load_metadata

    model = resolve_model_path(None)
    meta, cfg = load_metadata(model), load_config(model.with_name(model.stem + ".train.yaml"))
    checkpoint, _ = untrained_checkpoint(
        tmp / "shipped.pt", meta.task, cfg.env.robot, cfg.env.base_lin_vel, cfg.env.obs_history,
        meta.flow_steps, meta.chunk, hidden=list(cfg.policy.hidden), solver=meta.flow_solver,
        kind=meta.policy_kind,
    )  # fmt: skip
    result, policies = _backends(model, checkpoint, n)
    head = {
        "model": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
        "policy_kind": meta.policy_kind,
        "flow_steps": meta.flow_steps,
        "chunk": meta.chunk,
        "hidden": list(cfg.policy.hidden),
        "torch_weights": "untrained, same layers: no checkpoint ships with the model",
    }
    torch_policy = next((p for name, p in policies.items() if name.startswith("torch")), None)
    if torch_policy is not None:
        # The torch module's named weights have the shapes of the file's: both run the same layers.
        state = torch_policy.module.state_dict()
        shapes = {i.name: tuple(i.dims) for i in onnx.load(str(model)).graph.initializer if i.name in state}
        head["same_layers_as_onnx"] = bool(shapes) and all(
            tuple(state[k].shape) == v for k, v in shapes.items()
        )
    return {**head, "backends": result}


def _backends(onnx_path: Path, checkpoint: Path, n: int) -> tuple[dict, dict]:
    """p50/p99 of ``infer`` per backend, and the policies built. For a zero-noise model each torch
    backend's max |difference| from ORT's CPU chunk on one observation too (same weights)."""
    import numpy as np
    import torch

    from rfo_ros.runtime import load_metadata, make_policy, measure_model_latency

    zero_noise = load_metadata(onnx_path).zero_noise
    available = {"torch": torch.cuda.is_available(), "onnx": _ort_cuda_line().startswith("installed")}
    backends: dict[str, tuple[Path, str, dict]] = {
        "torch_cuda_graph": (checkpoint, "torch", {"provider": "cuda", "cuda_graph": True}),
        "torch_cuda_eager": (checkpoint, "torch", {"provider": "cuda", "cuda_graph": False}),
        "torch_cpu": (checkpoint, "torch", {"provider": "cpu"}),
        "ort_cpu": (onnx_path, "onnx", {"provider": "cpu"}),
        "ort_cuda": (onnx_path, "onnx", {"provider": "cuda"}),
    }
    result, policies, chunks = {}, {}, {}
    obs = np.random.default_rng(1).standard_normal(load_metadata(onnx_path).obs_dim)
    for name, (path, backend, kwargs) in backends.items():
        if kwargs["provider"] == "cuda" and not available[backend]:
            why = "no CUDA device" if backend == "torch" else "no CUDAExecutionProvider in this onnxruntime"
            result[name] = {"status": "not run", "reason": why}
            continue
        try:
            extra = {"zero_noise": zero_noise} if backend == "torch" else {}
            policy = make_policy(
                path, backend=backend, require_gpu=kwargs["provider"] == "cuda", **kwargs, **extra
            )
            stats = measure_model_latency(policy, n)
        except Exception as exc:  # one backend's failure must not hide the others' figures
            result[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            continue
        policies[name] = policy
        result[name] = {"provider": policy.provider, "n": n}
        result[name].update({k: round(stats[k], 4) for k in ("p50_ms", "p99_ms", "mean_ms", "max_ms")})
        if zero_noise:
            chunks[name] = policy.infer(obs)
    if "ort_cpu" in chunks:
        for name, chunk in chunks.items():
            if name.startswith("torch"):
                result[name]["max_abs_diff_vs_ort_cpu"] = float(np.abs(chunk - chunks["ort_cpu"]).max())
    return result, policies


def training(plan: Plan, out: Saved, budget_s: float) -> None:
    """Env steps/s with the networks on CUDA against the CPU, interleaved iterations of one config."""
    import torch

    from rfo_ros.bench.train import time_modes

    modes = {"cpu": ["run.device=cpu"], "cuda": ["run.device=cuda"]}
    out["config"], out["overrides"] = plan.train_config, list(plan.train_sets)
    out.update(time_modes(plan.train_config, list(plan.train_sets), modes, plan.train_iterations,
                          plan.train_warmup))  # fmt: skip
    rates = out["steps_per_s"]
    out["cuda_over_cpu"] = rates["cuda"] / rates["cpu"]
    if not out["device"]["cuda"].startswith("cuda"):
        out["cuda"] = _no_cuda_line(torch) + ": run.device cuda fell back to the CPU, both modes ran there"


def scale(plan: Plan, out: Saved, budget_s: float) -> None:
    """``bench scale``'s training runs with each rank count of the plan, envs and threads split evenly."""
    from rfo_ros.bench.scale import layout_rate

    threads = _cores()
    out["config"], out["overrides"] = plan.scale_config, list(plan.scale_sets)
    out.update(total_envs=plan.scale_envs, total_threads=threads, seconds_per_run=plan.scale_seconds)
    out["layout"] = "R torchrun ranks x (threads / R) simulation threads each, OMP_NUM_THREADS=1 (not pinned)"
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rfo_gpu_scale_") as tmp:
        for ranks in plan.scale_ranks:
            if ranks > threads or plan.scale_envs % ranks:
                why = f"needs {ranks} cores and envs divisible by it: {threads} cores, {plan.scale_envs} envs"
                runs[str(ranks)] = {"status": "not run", "reason": why}
                out["ranks"] = runs
                continue
            args = argparse.Namespace(
                config=plan.scale_config, set=list(plan.scale_sets), envs=plan.scale_envs, threads=threads,
                procs=ranks, seconds=plan.scale_seconds,
            )  # fmt: skip
            try:
                rate = layout_rate(args, "single" if ranks == 1 else "distributed", Path(tmp) / f"r{ranks}")
                runs[str(ranks)] = {"env_steps_per_s": rate, "threads_per_rank": threads // ranks}
            except (Exception, SystemExit) as exc:  # the next rank count may still run
                runs[str(ranks)] = {"status": "error", "error": str(exc)[-1500:]}
            out["ranks"] = runs
    if not any("env_steps_per_s" in r for r in runs.values()):
        raise RuntimeError(f"no rank count trained: {sorted(runs)} all failed or could not run (see ranks)")
    base = runs.get("1", {}).get("env_steps_per_s")
    if base:
        out["speedup_over_1_rank"] = {
            r: v["env_steps_per_s"] / base for r, v in runs.items() if "env_steps_per_s" in v
        }


def tests(plan: Plan, out: Saved, budget_s: float) -> None:
    """pytest on the device tests; outcome counts and each test's outcome (junit XML)."""
    out["targets"] = list(plan.pytest_targets)
    if importlib.util.find_spec("pytest") is None:
        out["status"], out["reason"] = "not run", "pytest is not installed (bring its wheel with --wheels)"
        return
    with tempfile.TemporaryDirectory(prefix="rfo_gpu_tests_") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *plan.pytest_targets, "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}"]  # fmt: skip
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(10.0, budget_s - 10))
        out["exit_status"], out["output_tail"] = done.returncode, (done.stdout + done.stderr)[-1500:]
        if xml.is_file():
            out.update(_junit_counts(xml))
    if done.returncode != 0:  # failures, or pytest could not even collect (exit 2-5): the counts stay above
        raise RuntimeError(f"pytest exit status {done.returncode}: {_last_line(out['output_tail'])}")


def _junit_counts(xml: Path) -> dict:
    """passed/failed/errors/skipped and per test (name, outcome, message) from pytest's junit XML."""
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or "")[:300]
        cases.append(
            {"test": case.get("name"), "outcome": outcome, **({"message": message} if message else {})}
        )
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    return {"counts": counts, "all_passed": counts["failed"] + counts["error"] == 0, "cases": cases}


SECTIONS: dict[str, Callable[[Plan, Saved, float], None]] = {
    "environment": environment,
    "inference": inference,
    "training": training,
    "scale": scale,
    "tests": tests,
}
