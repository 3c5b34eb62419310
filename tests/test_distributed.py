"""torchrun data parallelism (rfo_ros/distributed.py) with 2 real gloo ranks on loopback.

The averaged update equals the single-process update on both ranks' data; ranks hold identical
weights after every update (RFO and PPO on cart-pole); batch statistics (normaliser, adjoint-clip
quantile, advantage mean and std) are the whole batch's; a 2-rank run resumes exactly; a checkpoint
refuses another world size; ``bench scale`` runs its three layouts.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from training_settings import TINY_TRAINING

from rfo_ros import distributed
from rfo_ros.algos.cfm import cfm_loss_per_sample
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.reuse import clip_adjoints
from rfo_ros.bench import train_launcher
from rfo_ros.checkpoint import load_checkpoint
from rfo_ros.config import load_config
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.normalizer import ObsNormalizer
from rfo_ros.runner import Runner

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[1]
TINY = [
    *TINY_TRAINING,
    "onpolicy.rollout_steps=8",
    "run.eval_episodes=2",
    "run.checkpoint_every=1",
]


def _spawn(worker, *args) -> None:
    """Run ``worker(rank, rendezvous, *args)`` on 2 gloo ranks; a failure on either rank fails the test.

    The ranks meet through a file store (no TCP port to pick, so no race for one)."""
    rendezvous = tempfile.mktemp(prefix="rfo_ros_rendezvous_")
    try:
        mp.spawn(worker, args=(rendezvous, *args), nprocs=2, join=True)
    finally:
        Path(rendezvous).unlink(missing_ok=True)


def _join(rank: int, rendezvous: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    torch.set_num_threads(1)


def _leave() -> None:
    """Leave the group and end this spawned rank at once. A spawned rank's normal interpreter teardown
    aborts now and then ("terminate called without an active exception", ~1 run in 10 here, after every
    file was written); the trainer under torchrun exits cleanly (10 of 10), so the tests skip the
    teardown rather than fail on it."""
    dist.destroy_process_group()
    os._exit(0)


def _actor(kind: str) -> Actor:
    torch.manual_seed(0)
    kwargs = {"obs_dim": 5, "action_dim": 3, "hidden": [16, 16]}
    return Actor(kind, kwargs | ({"chunk": 2, "steps": 2} if kind == "flow" else {}))


def _batch(kind: str, seed: int, n: int = 32):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 2, 3) if kind == "flow" else (n, 1, 3)
    return [torch.randn(n, 5, generator=g), torch.randn(shape, generator=g), torch.rand(n, generator=g)]


def _loss(actor: Actor, obs, z, u) -> torch.Tensor:
    """A per-sample mean loss of each policy family: CFM (flow), negative log-likelihood (Gaussian)."""
    obs_norm = actor.normalizer(obs)
    if actor.kind == "flow":
        return cfm_loss_per_sample(actor.policy, obs_norm, z, u, torch.zeros_like(z)).mean()
    return -actor.policy.log_prob(obs_norm, z[:, 0]).mean()


def _step_on(actor: Actor, batch) -> None:
    optim = GuardedOptimizer(actor.policy.parameters(), lr=1e-2, clip=1.0)
    for _ in range(3):
        optim.step(_loss(actor, *batch))


def _update_worker(rank: int, rendezvous: str, kind: str, out: str) -> None:
    _join(rank, rendezvous)
    actor = _actor(kind)
    _step_on(actor, _batch(kind, seed=100 + rank))
    if rank == 0:
        torch.save(actor.state_dict(), out)
    _leave()


@pytest.mark.parametrize("kind", ["flow", "gaussian"])
def test_two_rank_update_equals_the_single_process_update_on_both_ranks_data(tmp_path, kind):
    out = tmp_path / "rank0.pt"
    _spawn(_update_worker, kind, str(out))
    single = _actor(kind)
    halves = [_batch(kind, seed=100), _batch(kind, seed=101)]
    _step_on(single, [torch.cat(parts) for parts in zip(*halves, strict=True)])
    two_ranks = torch.load(out)
    for name, value in single.state_dict().items():
        assert torch.allclose(two_ranks[name], value, rtol=0, atol=1e-6), name


def _digest(*modules: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for module in modules:
        for value in module.state_dict().values():
            h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _trainer_worker(rank: int, rendezvous: str, algo: str, out: str) -> None:
    _join(rank, rendezvous)
    cfg = load_config(None, [*TINY, f"algo={algo}", "run.total_env_steps=100000"])
    runner = Runner(cfg, Path(out), progress=False)
    digests, obs = [], []
    for _ in range(4):
        runner.algo.iterate()
        digests.append(distributed.gather_objects(_digest(runner.actor, runner.algo.critic.critic)))
        obs.append(distributed.gather_objects(runner.algo.obs.sum().item()))
    if rank == 0:
        torch.save({"digests": digests, "obs": obs}, Path(out) / "check.pt")
    runner.env.close()
    _leave()


@pytest.mark.parametrize("algo", ["rfo", "ppo"])
def test_ranks_hold_identical_weights_after_every_update(tmp_path, algo):
    _spawn(_trainer_worker, algo, str(tmp_path))
    check = torch.load(tmp_path / "check.pt")
    for per_rank in check["digests"]:
        assert per_rank[0] == per_rank[1]
    assert len({d[0] for d in check["digests"]}) == 4  # and they did change at every update
    assert all(a != b for a, b in check["obs"])  # while each rank stepped envs of its own


def _merge_worker(rank: int, rendezvous: str, out: str) -> None:
    _join(rank, rendezvous)
    norm = ObsNormalizer(4)
    norm.update(torch.arange(12.0).reshape(3, 4) * (rank + 1))
    if rank == 0:
        torch.save(norm.state_dict(), out)
    _leave()


def test_normaliser_statistics_are_merged_across_ranks(tmp_path):
    _spawn(_merge_worker, str(tmp_path / "norm.pt"))
    merged = torch.load(tmp_path / "norm.pt")
    single = ObsNormalizer(4)
    single.update(torch.cat([torch.arange(12.0).reshape(3, 4), 2 * torch.arange(12.0).reshape(3, 4)]))
    for name, value in single.state_dict().items():
        assert torch.allclose(merged[name], value, rtol=1e-6), name


def _adjoints(rank: int) -> torch.Tensor:
    """Rank ``rank``'s heavy-tailed adjoints (S, C, m): its norms differ from the other rank's."""
    g = torch.Generator().manual_seed(rank)
    return torch.randn(64, 2, 3, generator=g, dtype=torch.float64) * torch.rand(64, 1, 1, generator=g) ** -2


def _batch_statistics_worker(rank: int, rendezvous: str, out: str) -> None:
    _join(rank, rendezvous)
    own = _adjoints(rank)
    torch.save((clip_adjoints(own, 0.9), distributed.batch_mean_std(own)), Path(out) / f"rank{rank}.pt")
    _leave()


def test_batch_statistics_are_the_whole_batchs_over_every_rank(tmp_path):
    """RFO's adjoint-clip quantile and PPO/FPO's advantage mean and std: per rank they would differ."""
    _spawn(_batch_statistics_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    both = torch.cat([_adjoints(0), _adjoints(1)])
    assert torch.equal(torch.cat([clipped for clipped, _ in ranks]), clip_adjoints(both, 0.9))
    assert not torch.equal(clip_adjoints(both, 0.9)[:64], clip_adjoints(_adjoints(0), 0.9))
    for _, (mean, std) in ranks:
        torch.testing.assert_close(mean, both.mean(), rtol=1e-12, atol=0)
        torch.testing.assert_close(std, both.std(), rtol=1e-12, atol=0)


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [*train_launcher(2), "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=200, env=env)


def _sets(*values: str) -> list[str]:
    return [a for v in (*TINY, *values) for a in ("--set", v)]


def test_a_two_rank_run_resumes_exactly_and_refuses_another_world_size(tmp_path):
    steps = 2 * 8 * 8  # one iteration of both ranks
    straight = _torchrun("--out", str(tmp_path / "straight"), *_sets(f"run.total_env_steps={4 * steps}"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = _torchrun("--out", str(tmp_path / "resumed"), *_sets(f"run.total_env_steps={2 * steps}"))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = _torchrun(
        "--out", str(tmp_path / "resumed"), "--resume", "--set", f"run.total_env_steps={4 * steps}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert a["world_size"] == b["world_size"] == 2 and a["env_steps"] == b["env_steps"] == 4 * steps
    for name, value in a["actor"]["state"].items():
        assert torch.equal(value, b["actor"]["state"][name]), name
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "rfo_ros.train",
            "--no-progress",
            "--out",
            str(tmp_path / "resumed"),
            "--resume",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 2 and "written by 2 process(es)" in single.stderr


def test_bench_scale_runs_the_three_layouts_on_the_same_envs():
    """``bench scale`` end to end on a tiny cart-pole: 1 process, 2 ranks and 2 independent processes, each
    a real training run; the ratios are those of the layouts' mean rates."""
    split_by_the_bench = ("env.num_envs=", "env.threads=")
    shrink = [a for v in TINY if not v.startswith(split_by_the_bench) for a in ("--set", v)]
    cmd = [sys.executable, "-m", "rfo_ros.bench", "scale", "--config", "config/train/cartpole_rfo.yaml"]
    cmd += ["--envs", "8", "--threads", "2", "--seconds", "2", "--rounds", "1", "--json", *shrink]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=200, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rates = {k: report[k]["env_steps_per_s"][0] for k in ("single", "distributed", "independent")}
    assert all(rate > 0 for rate in rates.values()), rates
    assert report["speedup"] == pytest.approx(rates["distributed"] / rates["single"])
    assert report["independent_over_single"] == pytest.approx(rates["independent"] / rates["single"])
    assert report["distributed"]["layout"] == "2 ranks x 1 threads"
