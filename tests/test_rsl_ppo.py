"""rsl_rl's PPO (``algo: rsl_ppo``) through our trainer: files written, time-outs flagged, a clear error
without rsl_rl. Skipped where the optional rsl_rl (requirements/bench.txt) is not installed."""

import importlib
import json
import math

import numpy as np
import pytest
import torch

from rfo_ros.checkpoint import load_actor
from rfo_ros.config import load_config
from rfo_ros.nets.rsl import require_rsl_rl
from rfo_ros.train import main

TINY = [
    "algo=rsl_ppo",
    "env.task=cartpole",
    "env.num_envs=8",
    "env.threads=1",
    "rsl.actor_hidden_dims=[32, 32]",
    "rsl.critic_hidden_dims=[32, 32]",
    "rsl.num_steps_per_env=16",
]
needs_rsl_rl = pytest.mark.skipif(
    importlib.util.find_spec("rsl_rl") is None,
    reason="rsl_rl not installed (optional: pip install -r requirements/bench.txt)",
)


def test_missing_rsl_rl_says_how_to_install(monkeypatch):
    real = importlib.import_module

    def without_rsl_rl(name, *args):
        if name == "rsl_rl":
            raise ModuleNotFoundError("No module named 'rsl_rl'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_rsl_rl)
    with pytest.raises(ImportError, match="requirements/bench.txt"):
        require_rsl_rl()


@needs_rsl_rl
def test_trainer_writes_the_same_files_as_for_our_algorithms(tmp_path):
    # 8 cartpole envs x 250-step episodes: 2560 steps finish the first episodes (a finite return).
    sets = [*TINY, "run.total_env_steps=2560", "run.eval_episodes=2", "run.checkpoint_every=5"]
    rc = main([arg for s in sets for arg in ("--set", s)] + ["--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["algo"] == "rsl_ppo" and summary["env_steps"] >= 2560
    assert math.isfinite(summary["final_return"])
    assert "falls" in summary["eval"]["stochastic"]
    header, *rows = (tmp_path / "metrics.csv").read_text().splitlines()
    columns = header.split(",")
    for key in ("Train/env_steps", "Train/wall_time_s", "Train/return_mean100", "Policy/learning_rate"):
        assert key in columns
    last = dict(zip(columns, rows[-1].split(","), strict=True))
    assert math.isfinite(float(last["Train/return_mean100"]))
    actor, payload = load_actor(tmp_path / "checkpoints" / "last.pt")  # what evaluate and export read
    assert payload["algo"] == "rsl_ppo" and actor.kind == "rsl_gaussian"
    actions, _ = actor(torch.zeros(3, actor.obs_dim), torch.zeros(3, 1, actor.action_dim))
    assert actions.shape == (3, 1, actor.action_dim) and actions.abs().max() <= 1.0


@needs_rsl_rl
def test_time_limit_is_a_time_out_and_failure_is_not(tmp_path):
    from rfo_ros.runner import Runner

    runner = Runner(load_config(None, TINY), tmp_path, progress=False)
    env = runner.algo.env
    env.env.episode_step[:] = env.max_episode_length - 1  # every episode ends at this step
    _, _, dones, extras = env.step(torch.zeros(env.num_envs, env.num_actions))
    assert dones.all()
    assert torch.equal(extras["time_outs"], torch.ones(env.num_envs, dtype=torch.bool))
    runner.env.close()


@needs_rsl_rl
def test_resume_restores_the_adapted_learning_rate(tmp_path):
    from rfo_ros.runner import Runner

    cfg = load_config(None, TINY)
    first = Runner(cfg, tmp_path, progress=False)
    for _ in range(2):
        first.algo.iterate()
    state = first.algo.state_dict()
    second = Runner(cfg, tmp_path / "again", progress=False)
    second.algo.load_state_dict(state)
    assert second.algo.ppo.learning_rate == first.algo.ppo.learning_rate
    for a, b in zip(first.actor.parameters(), second.actor.parameters(), strict=True):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    first.env.close()
    second.env.close()
