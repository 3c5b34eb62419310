"""``run.device``: networks on a GPU with the simulation on the CPU, and the CPU fallback without one."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from training_settings import TINY_TRAINING

from rfo_ros.config import load_config
from rfo_ros.envs import make_task
from rfo_ros.envs.device_env import DeviceEnv, resolve_device, tensors_to
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.runner import Runner

FAST = [*TINY_TRAINING, "run.eval_episodes=2", "onpolicy.rollout_steps=8", "run.total_env_steps=128"]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback of a machine without CUDA")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _trained(tmp_path, name: str, algo: str, device: str) -> Runner:
    cfg = load_config(None, [*FAST, f"algo={algo}", f"run.device={device}"])
    runner = Runner(cfg, tmp_path / name, progress=False)
    runner.train()
    return runner


@no_cuda
def test_resolve_device_without_cuda():
    assert resolve_device("cpu") == (torch.device("cpu"), None)
    assert resolve_device("auto") == (torch.device("cpu"), None)
    for request in ("cuda", "cuda:1"):
        device, warning = resolve_device(request)
        assert device == torch.device("cpu")
        assert "CUDA is not available here; the networks train on the CPU" in warning


@no_cuda
@pytest.mark.parametrize("algo", ["rfo", "ppo"])
def test_a_cuda_request_without_cuda_trains_on_the_cpu_exactly_as_cpu(tmp_path, algo):
    on_cpu, fallback = (_trained(tmp_path, d, algo, d) for d in ("cpu", "cuda"))
    assert fallback.device == torch.device("cpu") and not isinstance(fallback.env, DeviceEnv)  # no wrapper
    for (name, a), (_, b) in zip(
        on_cpu.actor.state_dict().items(), fallback.actor.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@no_cuda
def test_train_cli_says_it_falls_back_and_records_the_device(tmp_path):
    out = tmp_path / "run"
    sets = [a for o in [*FAST, "run.device=cuda"] for a in ("--set", o)]
    proc = subprocess.run(
        [sys.executable, "-m", "rfo_ros.train", "--no-progress", "--out", str(out), *sets],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    warning = "warning: run.device 'cuda': CUDA is not available here; the networks train on the CPU"
    assert warning in proc.stdout + proc.stderr
    assert json.loads((out / "summary.json").read_text())["device"] == "cpu"


def test_device_env_hands_back_results_and_keeps_the_gradient():
    """The wrapper's own path (on the CPU its moves are copies of the same device): results arrive as
    ``StepResult``s and the reward still differentiates to the action through the simulator."""
    env = VecEnv(make_task("cartpole"), 2, seed=0, threads=1)
    wrapped = DeviceEnv(env, torch.device("cpu"))
    obs = wrapped.reset()
    assert obs.shape == (2, env.obs_dim) and wrapped.num_envs == 2  # attributes are the env's
    action = torch.full((2, env.action_dim), 0.3, requires_grad=True)
    result = wrapped.step(action)
    result.reward.sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert result.terminated.dtype == torch.bool and result.final_obs.shape == obs.shape
    env.close()


def test_saved_states_move_to_the_networks_device():
    tree = {"obs": torch.zeros(2), "terms": {"stab": {"previous": (torch.ones(1), torch.ones(2))}}, "n": 3}
    moved = tensors_to(tree, torch.device("meta"))
    assert moved["obs"].is_meta and all(t.is_meta for t in moved["terms"]["stab"]["previous"])
    assert isinstance(moved["terms"]["stab"]["previous"], tuple) and moved["n"] == 3


@cuda
@pytest.mark.parametrize("algo", ["rfo", "sapo", "ppo", "fpo"])
def test_networks_train_on_cuda_and_resume(tmp_path, algo):
    runner = _trained(tmp_path, "gpu", algo, "cuda")
    assert runner.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in runner.actor.parameters())
    assert all(np.isfinite(p.detach().cpu().numpy()).all() for p in runner.actor.parameters())
    runner.save(1.0)
    resumed = Runner(runner.cfg, tmp_path / "gpu", False)
    resumed.resume()  # the saved algorithm state (CPU tensors in the file) goes back to the GPU
    assert resumed.algo.obs.device.type == "cuda" and resumed.env.stats.env_steps == 128
    assert resumed.finish()["device"].startswith("cuda")
