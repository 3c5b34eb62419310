"""The trainer end to end on cartpole: config errors, learning, interruption and exact resumption."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_settings import TINY_TRAINING, interrupt_at

from rfo_ros.checkpoint import load_checkpoint
from rfo_ros.config import ConfigError, load_config
from rfo_ros.evaluate import evaluate
from rfo_ros.runner import Runner

FAST = [
    *TINY_TRAINING,
    "run.eval_episodes=4",
    "run.checkpoint_every=2",
]


def run_train(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rfo_ros.train", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (
            ["env.num_env=8"],
            "env.num_env: unknown key (valid keys here: action_rate, base_lin_vel, course_levels, critic_obs",
        ),
        (["diff.horizon=abc"], "diff.horizon = 'abc'"),
        (["algo=sac"], "algo = 'sac'"),
        (["env.task=humanoid"], "unknown task"),
        (["nokey"], "key=value"),
        (["run.device=gpu"], "run.device"),
    ],
)
def test_config_errors_exit_2_and_write_nothing(tmp_path, overrides, needle):
    out = tmp_path / "run"
    proc = run_train("--out", str(out), *[a for o in overrides for a in ("--set", o)])
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert not out.exists()


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env:\n  task: cartpole\n  nmu_envs: 3\n")
    with pytest.raises(ConfigError, match="env.nmu_envs: unknown key"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_resume_without_a_run_folder_is_a_clear_error(tmp_path):
    proc = run_train("--resume", "--out", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "no config.yaml" in proc.stderr


#: Extra settings per resume case: RFO with a schedule and sample reuse, SAPO with its temperature.
RESUME_CASES = {
    "rfo": [
        "diff.lr_schedule=linear",
        "diff.lr_final_fraction=0.25",
        "diff.reuse_epochs=2",
        "diff.reuse_minibatches=2",
        "diff.adjoint_clip_quantile=0.9",
    ],
    "sapo": ["critic.ensemble=2"],
}


def _runner(tmp_path, name, algo, steps):
    cfg = load_config(
        None,
        [*FAST, f"algo={algo}", f"run.total_env_steps={steps}", "onpolicy.rollout_steps=8"]
        + RESUME_CASES.get(algo, []),
    )
    runner = Runner(cfg, tmp_path / name, progress=False)
    runner.write_config()
    return runner


@pytest.mark.parametrize("algo", ["rfo", "sapo", "fpo"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, algo):
    steps = 8 * 8 * 6  # six iterations
    straight = _runner(tmp_path, "straight", algo, steps)
    straight.train()

    interrupt_at(_runner(tmp_path, "interrupted", algo, steps), 3)
    resumed = _runner(tmp_path, "interrupted", algo, steps)
    resumed.resume()
    assert resumed.iteration == 3
    resumed.train()
    for (name, a), (_, b) in zip(
        straight.actor.state_dict().items(), resumed.actor.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    if algo == "sapo":
        assert torch.equal(straight.algo.bonus.log_alpha, resumed.algo.bonus.log_alpha)
    assert straight.env.stats.env_steps == resumed.env.stats.env_steps
    if algo == "rfo":  # the linear schedule resumed where it stopped: the last update used 1 - 0.75 * 5/6
        for runner in (straight, resumed):
            lr = runner.algo.optim.opt.param_groups[0]["lr"]
            assert lr == pytest.approx(runner.cfg.diff.actor_lr * (1 - 0.75 * 5 / 6))
            assert runner.algo.lr_factor() == pytest.approx(0.25)



@pytest.mark.parametrize("algo", ["rfo", "ppo"])
def test_updates_run_on_update_threads_and_rollouts_on_torch_threads(tmp_path, algo, monkeypatch):
    runner = _runner(tmp_path, algo, algo, 8 * 8 * 2)
    runner.algo.update_threads = 2  # as the builder resolves run.update_threads=2
    seen = {"step": set(), "optimizer": set()}
    env_step = runner.env.step
    stepping = lambda a: seen["step"].add(torch.get_num_threads()) or env_step(a)  # noqa: E731
    monkeypatch.setattr(runner.env, "step", stepping)
    optim_step = runner.algo.optim.step
    spy = lambda *a, **k: seen["optimizer"].add(torch.get_num_threads()) or optim_step(*a, **k)  # noqa: E731
    monkeypatch.setattr(runner.algo.optim, "step", spy)
    torch.set_num_threads(1)
    runner.algo.iterate()
    assert seen == {"step": {1}, "optimizer": {2}}
    assert torch.get_num_threads() == 1  # restored for the next rollout


def test_update_threads_default_to_the_simulation_threads(tmp_path):
    runner = _runner(tmp_path, "default", "rfo", 8 * 8)
    assert runner.cfg.run.update_threads is None
    assert runner.algo.update_threads == runner.env.sim.threads == 1  # TINY_TRAINING's env.threads


def test_nan_loss_is_skipped_and_counted(tmp_path):
    runner = _runner(tmp_path, "nan", "shac", 8 * 8 * 2)
    runner.env.task.reward = lambda s, a, n: torch.full((8,), float("nan"), dtype=torch.float64)
    runner.train()
    assert runner.algo.optim.skipped == 2
    assert all(torch.isfinite(p).all() for p in runner.actor.parameters())


def test_brief_rfo_run_improves_on_the_untrained_policy(tmp_path):
    cfg = load_config(None, ["env.num_envs=32", "run.total_env_steps=150000", "run.eval_episodes=16"])
    runner = Runner(cfg, tmp_path / "learn", progress=False)
    runner.write_config()
    before = evaluate(runner.actor, "cartpole", 16, seed=7, deterministic=True)["return_mean"]
    runner.train()
    summary = runner.finish()
    after = evaluate(runner.actor, "cartpole", 16, seed=7, deterministic=True)["return_mean"]
    assert after > before + 20.0, (before, after)
    saved = json.loads((tmp_path / "learn" / "summary.json").read_text())
    for key in (
        "final_return",
        "best_return",
        "env_steps",
        "wall_time_s",
        "algo",
        "task",
        "config_hash",
        "solved",
    ):
        assert key in saved
    assert summary["env_steps"] >= 150000
    assert (tmp_path / "learn" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "learn" / "metrics.csv").is_file()
    # best.pt: the checkpoint whose training return beat every other checkpoint's, including the last.
    best = load_checkpoint(tmp_path / "learn" / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "learn" / "checkpoints" / "last.pt")
    assert best["best_checkpoint_return"] == pytest.approx(np.mean(best["recent_returns"]))
    assert best["best_checkpoint_return"] >= np.mean(last["recent_returns"])
    assert last["best_checkpoint_return"] == best["best_checkpoint_return"]


def test_resume_may_extend_the_budget_but_not_change_the_method(tmp_path):
    out = tmp_path / "run"
    base = [f"--set={s}" for s in [*FAST, "run.total_env_steps=128"]]
    assert run_train("--out", str(out), *base).returncode == 0
    proc = run_train("--resume", "--out", str(out), "--set", "diff.horizon=4")
    assert proc.returncode == 2 and "--resume may only change" in proc.stderr
    proc = run_train("--resume", "--out", str(out), "--set", "run.total_env_steps=256")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 256


def test_evaluate_cli_reports_both_modes_and_rejects_bad_input(tmp_path):
    runner = _runner(tmp_path, "ev", "rfo", 8 * 8 * 2)
    runner.train()
    ckpt = str(runner.checkpoint_path)
    proc = subprocess.run(
        [sys.executable, "-m", "rfo_ros.evaluate", ckpt, "--episodes", "2"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["task"] == "cartpole"
    for mode in ("stochastic", "zero_noise"):
        assert result[mode]["length_mean"] > 0 and np.isfinite(result[mode]["return_mean"])
    # Cart-pole takes no velocity command; a corrupt checkpoint is refused: clear errors, exit 1.
    proc = subprocess.run(
        [sys.executable, "-m", "rfo_ros.evaluate", ckpt, "--command", "1", "0", "0"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "takes no velocity command" in proc.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = subprocess.run(
        [sys.executable, "-m", "rfo_ros.evaluate", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "unreadable" in proc.stderr


def test_evaluate_holds_a_quadruped_at_the_given_command():
    from rfo_ros.envs import make_task
    from rfo_ros.runner import build_actor

    cfg = load_config(None, ["env.task=quadruped", "policy.hidden=[16]"])
    task = make_task("quadruped")
    actor = build_actor(cfg, task.obs_dim, task.action_dim, None).eval()
    # An untrained policy falls within about a second, so this is quick; the command must reach the obs.
    seen = []
    original = actor.forward

    def spy(obs, noise=None):
        seen.append(obs[:, task.obs_layout.slice("command")].clone())
        return original(obs, noise)

    actor.forward = spy
    out = evaluate(actor, "quadruped", 2, seed=0, deterministic=True, command=(1.25, 0.0, 0.0))
    assert out["length_mean"] > 0 and "forward_speed_mean" in out
    commands = torch.cat(seen).double()  # scaled by (2, 2, 0.25) in the observation
    expected = torch.tensor([2.5, 0.0, 0.0], dtype=torch.float64).expand_as(commands)
    torch.testing.assert_close(commands, expected, rtol=0, atol=1e-6)


def test_init_from_starts_a_new_run_from_a_checkpoints_networks_and_refuses_a_misfit(tmp_path):
    """A curriculum's next stage: the actor and critic (and their normalisers) carry over; a checkpoint of
    another algorithm or with other observations is refused with a clear error, exit 2."""
    first = _runner(tmp_path, "first", "ppo", 8 * 8 * 2)
    first.train()
    ckpt = str(first.checkpoint_path)
    cfg = load_config(None, [*FAST, "algo=ppo", "onpolicy.rollout_steps=8", f"run.init_from={ckpt}"])
    second = Runner(cfg, tmp_path / "b", progress=False)
    pairs = zip(first.actor.state_dict().items(), second.actor.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name
    assert torch.equal(first.algo.critic.critic.net[0].weight, second.algo.critic.critic.net[0].weight)
    assert second.env.stats.env_steps == 0 and second.iteration == 0
    for overrides, needle in ((["algo=fpo"], "a ppo checkpoint cannot start a fpo run"),
                              (["algo=ppo", "env.task=quadruped"], "do not fit")):  # fmt: skip
        proc = run_train("--out", str(tmp_path / "bad"), *[a for o in [*overrides, f"run.init_from={ckpt}"]
                                                           for a in ("--set", o)])  # fmt: skip
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("config", "runs"),
    [
        ("go1_gait_rfo.yaml", "legged/rfo_lr1e-3_tau02_500k_reuse150k_stab02"),
        ("go1_fine_gait_rfo.yaml", "go1_fine_gait/rfo_lr1e-3_reuse200k"),
    ],
)
def test_a_measured_config_is_the_one_its_runs_resolved(config: str, runs: str):
    """A config whose results docs/results reports is what those runs trained with, the seed aside."""
    root = Path(__file__).resolve().parents[1]
    shipped = load_config(root / "config/train" / config).model_dump(mode="json")
    for seed in range(3):
        folder = root / f"docs/results/plateau/{runs}_s{seed}"
        # Loaded, so that settings added since (at their defaults, which change nothing) are filled in.
        measured = load_config(folder / "config.yaml").model_dump(mode="json")
        measured["run"]["seed"] = shipped["run"]["seed"]
        assert measured == shipped
