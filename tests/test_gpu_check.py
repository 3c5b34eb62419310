"""``scripts/gpu_check.sh --dry-run`` (``python -m rfo_ros.bench gpu``): every section runs at toy size on
a CPU machine or says why not, in one JSON report; the offline wheel install and the budget's kill."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from rfo_ros.bench import gpu

REPO = Path(__file__).resolve().parents[1]


def _said_why(result: dict) -> bool:
    """A measurement, or a status with a reason or error to read."""
    return "p50_ms" in result or (
        result.get("status") in ("not run", "error") and bool(result.get("reason") or result.get("error"))
    )


def test_dry_run_writes_one_report_where_every_section_ran_or_says_why(tmp_path):
    out = tmp_path / "gpu" / "report.json"
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run", "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "dry-run" and report["setup"]["missing"] == []
    sections = report["sections"]
    assert list(sections) == list(gpu.SECTIONS)
    assert all(s["status"] == "ok" and s["seconds"] <= s["budget_s"] for s in sections.values()), sections
    assert report["total_s"] < gpu.DRY.total_s and report["summary"]
    cuda = torch.cuda.is_available()

    inference = sections["inference"]
    assert inference["ort_cuda"].startswith(("installed", "not installed"))
    assert cuda or inference["cuda"].startswith("absent")  # no CUDA: the report says so
    for model in ("K8_C8", "shipped"):
        backends = inference[model]["backends"]
        assert set(backends) == {"torch_cuda_graph", "torch_cuda_eager", "torch_cpu", "ort_cpu", "ort_cuda"}
        assert all(_said_why(r) for r in backends.values()), backends
        assert 0 < backends["ort_cpu"]["p50_ms"] <= backends["ort_cpu"]["p99_ms"]
        assert ("p50_ms" in backends["torch_cuda_graph"]) == cuda
    assert inference["shipped"]["same_layers_as_onnx"] is True
    # Same weights on both backends (zero noise): the chunks agree to float32 rounding.
    assert inference["K8_C8"]["backends"]["torch_cpu"]["max_abs_diff_vs_ort_cpu"] < 1e-4

    training = sections["training"]
    assert all(training["steps_per_s"][mode] > 0 for mode in ("cpu", "cuda"))
    assert training["device"]["cuda"].startswith("cuda") == cuda and ("cuda" in training) != cuda

    runs = sections["scale"]["ranks"]
    assert list(runs) == ["1", "2"] and all(r["env_steps_per_s"] > 0 for r in runs.values()), runs

    tests = sections["tests"]
    assert sum(tests["counts"].values()) == 4 and tests["all_passed"], tests
    if not cuda:
        assert all(c["outcome"] == "skipped" and "CUDA" in c["message"] for c in tests["cases"])


def _probe_wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel (distribution rfo-gpu-probe, module rfo_gpu_probe)."""
    wheel = folder / "rfo_gpu_probe-0.1-py3-none-any.whl"
    info = "rfo_gpu_probe-0.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("rfo_gpu_probe/__init__.py", "VALUE = 1\n")
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: rfo-gpu-probe\nVersion: 0.1\n")
        z.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{info}/RECORD", "")
    return wheel


def test_setup_installs_what_is_missing_from_the_wheel_folder_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # setup puts its site folder on the path
    monkeypatch.setattr(gpu, "REQUIRED", {"numpy": "numpy", "rfo_gpu_probe": "rfo-gpu-probe"})
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels)
    without = gpu.setup(None, tmp_path / "site0")
    assert without["missing"] == ["rfo-gpu-probe"] and "no --wheels" in without["install"]
    result = gpu.setup(str(wheels), tmp_path / "site")
    assert result["missing_before"] == ["rfo-gpu-probe"] and result["missing"] == []
    assert result["install"]["installed"] == ["rfo-gpu-probe"]
    assert (tmp_path / "site" / "rfo_gpu_probe" / "__init__.py").is_file()


def test_a_section_past_its_budget_is_killed_and_reported(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = gpu.run_section("scale", 3.0, True, env)  # torchrun and its ranks go with it
    assert result["status"] == "timeout" and "3 s budget" in result["error"] and result["seconds"] < 30


def test_a_failing_section_records_its_error(tmp_path, monkeypatch):
    def broken(plan, out, budget_s):
        out["measured"] = 1.0
        raise SystemExit("the config has no such task")

    monkeypatch.setitem(gpu.SECTIONS, "broken", broken)
    assert gpu._run_one_section("broken", gpu.DRY, tmp_path / "s.json", 5.0) == 1
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["measured"] == 1.0 and saved["error"] == "SystemExit: the config has no such task"


@pytest.mark.parametrize(
    "wheel, dist",
    [("PyYAML-6.0.3-cp312-cp312-any.whl", "pyyaml"), ("pydantic_core-2.50.4-cp312-any.whl", "pydantic-core")],
)
def test_wheel_file_names_give_the_distribution(wheel, dist):
    assert gpu._dist_name(wheel) == dist
