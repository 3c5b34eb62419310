"""Inference on CPU: provider in use, GPU fallback, ORT-vs-torch parity, input and model errors."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from test_export import make_actor, torch_ctrl, write_checkpoint

import rfo_ros.runtime.ort_model as ort_model
from rfo_ros.export import export_onnx
from rfo_ros.runtime import (
    GpuUnavailableError,
    ModelError,
    ModelMetadata,
    OrtPolicy,
    RobotMismatchError,
    TorchPolicy,
    load_metadata,
    make_policy,
    measure_model_latency,
)

CPU = "CPUExecutionProvider"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A flow actor (K=4, C=3) on cartpole, its checkpoint and its noise-input and zero-noise models."""
    folder = tmp_path_factory.mktemp("models")
    actor = make_actor()
    ckpt = write_checkpoint(folder / "flow.pt", actor)
    noisy = export_onnx(ckpt, folder / "flow.onnx").path
    zero = export_onnx(ckpt, folder / "flow_zero.onnx", zero_noise=True).path
    return {"actor": actor, "checkpoint": ckpt, "onnx": noisy, "zero": zero, "folder": folder}


def test_cpu_provider_is_reported(exported):
    policy = OrtPolicy(exported["onnx"], provider="cpu")
    assert policy.provider == CPU and policy.fallback_reason is None


def test_gpu_request_on_a_cpu_machine(exported, caplog):
    with caplog.at_level(logging.WARNING, logger="rfo_ros.runtime.ort_model"):
        policy = OrtPolicy(exported["onnx"])  # auto: falls back, says so
    assert policy.provider == CPU and "no CUDA provider" in policy.fallback_reason
    assert "running" in caplog.text and CPU in caplog.text
    with pytest.raises(GpuUnavailableError, match="GPU inference requested.*active: CPUExecutionProvider"):
        OrtPolicy(exported["onnx"], require_gpu=True)
    with pytest.raises(GpuUnavailableError):
        OrtPolicy(exported["onnx"], provider="cuda")
    with pytest.raises(ValueError, match="contradicts"):
        OrtPolicy(exported["onnx"], provider="cpu", require_gpu=True)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available")
def test_silent_cuda_fallback_is_detected(exported, monkeypatch):
    """onnxruntime-gpu without a usable GPU accepts the CUDA request and runs on CPU: the session's
    providers, not the request, decide. Here the real (CPU-only) ORT gets the same CUDA request."""
    monkeypatch.setattr(ort_model, "cuda_installed", lambda: True)
    policy = OrtPolicy(exported["onnx"], cuda_graph=True)
    assert policy.provider == CPU and "failed to start" in policy.fallback_reason
    assert not policy.cuda_graph and not policy.io_binding
    with pytest.raises(GpuUnavailableError, match="failed to start"):
        OrtPolicy(exported["onnx"], require_gpu=True)


def test_infer_matches_the_torch_actor(exported, cartpole_task):
    actor, rng = exported["actor"], np.random.default_rng(3)
    plain = OrtPolicy(exported["onnx"], provider="cpu")
    bound = OrtPolicy(exported["onnx"], provider="cpu", io_binding=True)  # the CUDA path's binding code
    for _ in range(5):
        obs = rng.normal(size=5).astype(np.float32) * 2
        noise = rng.standard_normal((3, 1)).astype(np.float32)
        expected = torch_ctrl(
            actor, cartpole_task, torch.from_numpy(obs)[None], torch.from_numpy(noise)[None]
        )[0]
        for policy in (plain, bound):
            got = policy.infer(obs, noise)
            assert got.shape == (3, 1) and got.dtype == np.float64
            assert np.abs(got - expected).max() <= 1e-5


def test_drawn_noise_is_seeded_and_zero_noise_is_deterministic(exported, cartpole_task):
    obs = np.linspace(-1, 1, 5)
    a, b = (
        OrtPolicy(exported["onnx"], provider="cpu", seed=7),
        OrtPolicy(exported["onnx"], provider="cpu", seed=7),
    )
    first = a.infer(obs)
    assert np.array_equal(first, b.infer(obs)) and not np.array_equal(first, a.infer(obs))
    noise = np.random.default_rng(7).standard_normal((3, 1), dtype=np.float32)
    np.testing.assert_array_equal(first, OrtPolicy(exported["onnx"], provider="cpu").infer(obs, noise))

    zero = OrtPolicy(exported["zero"], provider="cpu")
    expected = torch_ctrl(exported["actor"], cartpole_task, torch.tensor(obs[None], dtype=torch.float32),
                          torch.zeros(1, 3, 1))[0]  # fmt: skip
    assert np.abs(zero.infer(obs) - expected).max() <= 1e-5
    np.testing.assert_array_equal(zero.infer(obs), zero.infer(obs))
    with pytest.raises(ValueError, match="zero-noise"):
        zero.infer(obs, np.zeros((3, 1)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"observation": np.zeros(4)}, r"observation must have shape \(5,\)"),
        ({"observation": np.zeros((1, 5))}, r"observation must have shape \(5,\)"),
        ({"observation": np.array([0, np.nan, 0, 0, 0])}, r"observation has non-finite .* \[\[1\]\]"),
        ({"observation": np.full(5, 1e39)}, "float32-overflowing"),
        ({"observation": np.array(["a"] * 5)}, "must be numeric"),
        ({"observation": np.zeros(5), "noise": np.zeros(3)}, r"noise must have shape \(3, 1\)"),
        ({"observation": np.zeros(5), "noise": np.full((3, 1), np.inf)}, "noise has non-finite"),
        ({"observation": np.zeros(5), "image": np.zeros((1, 8, 8))}, "no image input"),
    ],
)
def test_bad_inputs_raise(exported, kwargs, match):
    policy = OrtPolicy(exported["onnx"], provider="cpu")
    with pytest.raises(ValueError, match=match):
        policy.infer(**kwargs)


def test_image_model_needs_its_image(tmp_path):
    actor = make_actor(obs_dim=5 + 64, image_shape=(1, 8, 8))
    path = export_onnx(write_checkpoint(tmp_path / "i.pt", actor), tmp_path / "i.onnx").path
    policy = OrtPolicy(path, provider="cpu")
    assert policy.metadata.image.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="needs an image"):
        policy.infer(np.zeros(5))
    with pytest.raises(ValueError, match=r"image must have shape \(1, 8, 8\)"):
        policy.infer(np.zeros(5), image=np.zeros((8, 8)))
    assert policy.infer(np.zeros(5), image=np.full((1, 8, 8), 0.5)).shape == (3, 1)


def test_missing_corrupt_and_foreign_models(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OrtPolicy(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OrtPolicy(corrupt)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["observation"], ["action_chunk"])],
        "foreign",
        [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("action_chunk", TensorProto.FLOAT, ["batch", 5])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(foreign)
    )
    with pytest.raises(ModelError, match="metadata key.*missing.*not an rfo_ros export"):
        OrtPolicy(foreign)


def _with_props(src, dst, **changes) -> None:
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {**props, **changes})
    onnx.save(model, str(dst))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"obs_dim": "6"}, "'obs_layout' 'size' must be the observation size"),
        (
            {"obs_dim": "6", "obs_layout": '{"size": 6, "fields": [{"name": "state", "size": 6}]}'},
            r"input 'observation' has shape \['batch', 5\], expected \[batch, 6\]",
        ),
        ({"zero_noise": "true"}, "inputs .* do not match the metadata"),
        ({"joint_names": '["a", "b"]'}, "'joint_names' must be 1 non-empty names"),
        ({"dt": "-0.01"}, "'dt' must be a positive number"),
        ({"rfo_ros_format": '"rfo_ros.onnx/0"'}, "must be 'rfo_ros.onnx/1'"),
        ({"chunk": "not json"}, "'chunk' is not JSON"),
        ({"flow_steps": "true"}, "'flow_steps' must be int"),
    ],
)
def test_inconsistent_metadata_is_refused(exported, tmp_path, changes, match):
    bad = tmp_path / "bad.onnx"
    _with_props(exported["onnx"], bad, **changes)
    with pytest.raises(ModelError, match=match):
        load_metadata(bad)


def test_metadata_round_trip(exported):
    meta = load_metadata(exported["onnx"])
    again = ModelMetadata.from_props(meta.to_props(), meta.source)
    for f in dataclasses.fields(ModelMetadata):
        a, b = getattr(meta, f.name), getattr(again, f.name)
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b or f.name == "extra"


def test_check_robot(exported):
    meta = dataclasses.replace(load_metadata(exported["onnx"]), joint_names=("hip", "knee", "ankle"))
    assert meta.check_robot(["hip", "knee", "ankle"]).tolist() == [0, 1, 2]
    assert meta.check_robot(["ankle", "wheel", "hip", "knee"]).tolist() == [
        2,
        3,
        0,
    ]  # reorders, ignores extras
    with pytest.raises(
        RobotMismatchError, match=r"missing on the robot: \['knee'\].*not used by the model: \['knie'\]"
    ):
        meta.check_robot(["hip", "knie", "ankle"])
    with pytest.raises(RobotMismatchError, match=r"more than once.*\['hip'\]"):
        meta.check_robot(["hip", "hip", "knee", "ankle"])
    with pytest.raises(RobotMismatchError, match=r"not in the model: \['wheel'\]"):
        meta.check_robot(["hip", "knee", "ankle", "wheel"], exact=True)
    with pytest.raises(RobotMismatchError, match="order differs"):
        meta.check_robot(["knee", "hip", "ankle"], exact=True)


def test_torch_backend_matches_onnx_on_cpu(exported):
    ort_policy = OrtPolicy(exported["onnx"], provider="cpu", seed=11)
    torch_policy = TorchPolicy(exported["checkpoint"], provider="cpu", seed=11)
    assert torch_policy.provider == "torch-cpu"
    assert torch_policy.metadata.to_props().keys() == ort_policy.metadata.to_props().keys()
    assert torch_policy.metadata.joint_names == ort_policy.metadata.joint_names
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = rng.normal(size=5)
        assert np.abs(torch_policy.infer(obs) - ort_policy.infer(obs)).max() <= 1e-5  # same noise stream
    with pytest.raises(GpuUnavailableError, match="no CUDA device"):
        TorchPolicy(exported["checkpoint"], require_gpu=True)


def test_make_policy_and_latency_helper(exported):
    assert make_policy(exported["onnx"], provider="cpu").provider == CPU
    assert make_policy(exported["checkpoint"], backend="torch", provider="cpu").provider == "torch-cpu"
    with pytest.raises(ValueError, match="unknown policy backend"):
        make_policy(exported["onnx"], backend="tensorrt")
    stats = measure_model_latency(make_policy(exported["zero"], provider="cpu"), n=50, warmup=2)
    assert stats["n"] == 50 and 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]


def test_runtime_imports_without_torch_mujoco_or_rclpy():
    """The ONNX backend must run on a robot computer with numpy + onnxruntime only (no torch, MuJoCo or
    ROS: the runtime's promise)."""
    code = "import sys, rfo_ros.runtime; assert not {'torch', 'mujoco', 'rclpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
