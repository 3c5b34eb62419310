"""The training loop: wires task, env, actor, critic and algorithm; logs, checkpoints, resumes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from rfo_ros import distributed
from rfo_ros.algos import BUILDERS, CHUNKED, POLICY_KIND, CriticLearner
from rfo_ros.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rfo_ros.config import TrainConfig
from rfo_ros.envs import Task, task_from_config
from rfo_ros.envs.course_levels import CourseLevels
from rfo_ros.envs.device_env import on_device, resolve_device, tensors_to
from rfo_ros.envs.shaping import make_shaping
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.evaluate import evaluate
from rfo_ros.metrics import MetricsLog, ProgressCallback, split_time
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.critic import make_critic
from rfo_ros.nets.normalizer import ObsNormalizer
from rfo_ros.plots import learning_curve
from rfo_ros.robot import ROBOT_RUN_FILE
from rfo_ros.route import route_of, stage
from rfo_ros.sim.batched import FDConfig
from rfo_ros.sim.gradient_model import GradientModel


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_actor(cfg: TrainConfig, obs_dim: int, action_dim: int, image_shape) -> Actor:
    kind = POLICY_KIND[cfg.algo]
    p = cfg.policy
    kwargs: dict = {
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "hidden": list(p.hidden),
        "image_shape": image_shape,
    }
    if kind == "flow":
        chunk = p.chunk if cfg.algo in CHUNKED else 1
        kwargs |= {"chunk": chunk, "steps": p.flow_steps, "solver": p.solver}
    elif kind == "rsl_gaussian":  # rsl_rl's own network settings (config section rsl), not ours
        r = cfg.rsl
        kwargs |= {"hidden": list(r.actor_hidden_dims), "activation": r.activation}
        kwargs |= {"init_std": r.init_noise_std}
    else:
        kwargs |= {"init_log_std": p.init_log_std}
    return Actor(kind, kwargs)


#: Rank r's envs and noise are seeded with ``run.seed + RANK_SEED_STRIDE * r`` (rank 0: ``run.seed``).
RANK_SEED_STRIDE = 1_000_003


class Runner:
    """``Runner(cfg, out_dir).run()`` trains, evaluates and writes checkpoints, metrics, summary, plot.

    Under torchrun (``rfo_ros.distributed``) every rank runs one: each owns ``env.num_envs`` envs and a
    seed stream of its own, starts from rank 0's weights, and averages gradients at every update;
    ``run.total_env_steps`` counts all ranks' steps; rank 0 alone writes. The networks live on
    ``run.device`` (``rfo_ros.envs.device_env``), the simulation on CPU threads.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: Path,
        progress: bool = True,
        callback: ProgressCallback | None = None,
        task: Task | None = None,
    ) -> None:
        self.cfg, self.out_dir, self.callback = cfg, Path(out_dir), callback
        self.world, self.rank = distributed.world_size(), distributed.rank()
        self.main = self.rank == 0
        self.progress = progress and self.main
        torch.manual_seed(cfg.run.seed)
        torch.set_num_threads(cfg.run.torch_threads)
        self.device, fallback = resolve_device(cfg.run.device, distributed.local_rank())
        if fallback and self.main:
            tqdm.write(f"warning: {fallback}")
        self.task = task or task_from_config(
            cfg.env.task, cfg.env.robot, cfg.env.base_lin_vel, cfg.env.obs_history
        )
        if cfg.env.course_levels:
            use_levels = getattr(self.task, "use_levels", None)
            if use_levels is None:
                raise ValueError(f"env.course_levels: task {cfg.env.task!r} has no obstacle course")
            use_levels(CourseLevels(cfg.env.course_levels))
        #: What rebuilds the task (a legged task's resolved robot description), for evaluation and export.
        self.task_options = self.task.options()
        e = cfg.env
        fd = FDConfig(e.fd_eps, e.fd_centered, overlap=e.fd_overlap, method=e.jacobians)
        rank_seed = cfg.run.seed + RANK_SEED_STRIDE * self.rank
        image_shape = self.task.image_shape
        #: The privileged fields the critic observes (the config's, else the robot file's).
        self.critic_fields = e.critic_obs if e.critic_obs is not None else self.task.default_critic_obs
        if self.critic_fields and image_shape is not None:
            raise ValueError("env.critic_obs: image tasks keep the actor's observation for the critic")
        sim_env = VecEnv(
            self.task, cfg.env.num_envs, seed=rank_seed, threads=cfg.env.threads, fd=fd,
            randomization=cfg.env.randomization, shaping=make_shaping(cfg.env.action_rate),
            gradient=GradientModel(**e.gradient_model.model_dump()), critic_obs=self.critic_fields,
        )  # fmt: skip
        self.env = on_device(sim_env, self.device)
        obs_dim, action_dim = sim_env.obs_dim, sim_env.action_dim
        self.actor = build_actor(cfg, obs_dim, action_dim, image_shape).to(self.device)
        critic_dim = sim_env.critic_obs_dim
        critic_net = make_critic(critic_dim, cfg.critic.hidden, cfg.critic.ensemble, image_shape)
        # Without privileged fields the critic reads the actor's observation through the actor's normaliser.
        own = bool(self.critic_fields)
        normalizer = ObsNormalizer(critic_dim).to(self.device) if own else self.actor.normalizer
        critic = CriticLearner(critic_net.to(self.device), cfg.critic, normalizer, own_normalizer=own)
        self.algo = BUILDERS[cfg.algo](cfg, self.env, self.actor, critic)
        #: The stages that made the checkpoint this run starts from (``rfo_ros.route``).
        self.route_before: list[dict] = []
        if cfg.run.init_from is not None:
            self.start_from(cfg.run.init_from, critic)
        if self.world > 1:
            for module in (self.actor, critic.critic, critic.target):
                distributed.broadcast_module(module)
            torch.manual_seed(rank_seed)  # each rank its own action noise and minibatches from here on
        self.iteration, self.wall_offset = 0, 0.0
        self.best_return = -float("inf")
        #: Training return (mean of the last 100 episodes) when ``best.pt`` was written.
        self.best_checkpoint_return = -float("inf")
        self.recent_returns: list[float] = []
        self.log = MetricsLog(self.out_dir, tensorboard=self.main, write=self.main)
        self.commit = git_commit()

    @property
    def env_steps(self) -> int:
        """Env steps of all ranks together (every rank steps the same number of envs per iteration)."""
        return self.env.stats.env_steps * self.world

    def start_from(self, path: str, critic: CriticLearner) -> None:
        """Load the actor and the critic (weights, target, normalisers) of the checkpoint at ``path``."""
        ck = load_checkpoint(path)
        same_policy = POLICY_KIND.get(ck["algo"]) == POLICY_KIND[self.cfg.algo]
        if not same_policy or "rsl_ppo" in (ck["algo"], self.cfg.algo):
            raise CheckpointError(
                f"run.init_from {path}: a {ck['algo']} checkpoint cannot start a {self.cfg.algo} run "
                "(init_from takes a run of the same policy family, e.g. distill or fpo into rfo, and not "
                "rsl_ppo, whose networks are rsl_rl's)"
            )
        self.route_before = route_of(ck, path)
        try:
            self.actor.load_state_dict(ck["actor"]["state"])
            critic.load_state_dict(ck["algo_state"]["critic"])
        except (KeyError, RuntimeError, ValueError) as exc:
            message = f"run.init_from {path}: its networks do not fit this run's: {exc}"
            raise CheckpointError(message) from None

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    def save(self, wall: float) -> None:
        """Write ``last.pt``; also ``best.pt`` when the training return beats every earlier checkpoint's."""
        current = float(np.mean(self.recent_returns)) if self.recent_returns else -float("inf")
        new_best = current > self.best_checkpoint_return
        if new_best:
            self.best_checkpoint_return = current
        own = {
            "algo_state": self.algo.state_dict(),
            "env_state": self.env.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        ranks = distributed.gather_to_main(own) if self.world > 1 else None  # a collective: every rank
        if not self.main:
            return
        payload = {
            "task": self.cfg.env.task,
            "task_options": self.task_options,
            "algo": self.cfg.algo,
            "actor": self.actor.spec(),
            "config": self.cfg.to_dict(),
            "commit": self.commit,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "wall_time_s": wall,
            "best_return": self.best_return,
            "best_checkpoint_return": self.best_checkpoint_return,
            "recent_returns": self.recent_returns,
            **own,
            "route": self.route(wall),
            "world_size": self.world,
            "rank_states": ranks,  # every rank's algo/env/RNG state under torchrun, else None
        }
        save_checkpoint(self.checkpoint_path, payload)
        if new_best:
            save_checkpoint(self.checkpoint_path.with_name("best.pt"), payload)
        self.log.flush()

    def resume(self) -> None:
        """Continue from ``checkpoints/last.pt``: same weights, optimisers, env states and RNG streams."""
        ck = load_checkpoint(self.checkpoint_path)
        saved_world = ck.get("world_size", 1)  # checkpoints before torchrun support: one process
        if saved_world != self.world:
            raise CheckpointError(
                f"{self.checkpoint_path} was written by {saved_world} process(es); resume it with "
                f"{'torchrun --nproc_per_node=' + str(saved_world) if saved_world > 1 else 'one process'} "
                f"(this run has {self.world})"
            )
        own = ck["rank_states"][self.rank] if self.world > 1 else ck
        self.actor.load_state_dict(ck["actor"]["state"])
        self.algo.load_state_dict(tensors_to(own["algo_state"], self.device))  # saved ones load on the CPU
        self.env.load_state_dict(own["env_state"])
        torch.set_rng_state(own["torch_rng"])
        self.iteration, self.wall_offset = ck["iteration"], ck["wall_time_s"]
        self.best_return, self.recent_returns = ck["best_return"], ck["recent_returns"]
        self.route_before = ck.get("route", [{}])[:-1]  # the earlier stages; this one is rebuilt at save
        # Checkpoints from before best.pt existed lack the key: no best checkpoint yet.
        self.best_checkpoint_return = ck.get("best_checkpoint_return", -float("inf"))
        self.log.load(self.iteration)

    # -- loop ----------------------------------------------------------------------------------
    def _row(self, metrics: dict[str, float], wall: float) -> dict[str, float]:
        finished = distributed.gather_objects(self.env.stats.pop_completed())  # every rank's episodes
        returns = [r for rank_returns, _ in finished for r in rank_returns]
        lengths = [n for _, rank_lengths in finished for n in rank_lengths]
        self.recent_returns = (self.recent_returns + returns)[-100:]
        row = {
            "iteration": float(self.iteration),
            "Train/env_steps": float(self.env_steps),
            "Train/wall_time_s": wall,
            **metrics,
            **self.task.train_metrics(),
            "Train/nan_skips": float(self.algo.optim.skipped),
            "Train/divergences": float(self.env.stats.divergences),
        }
        if returns:
            row["Train/episode_return"] = float(np.mean(returns))
            row["Train/episode_length"] = float(np.mean(lengths))
        if self.recent_returns:
            row["Train/return_mean100"] = float(np.mean(self.recent_returns))
            self.best_return = max(self.best_return, row["Train/return_mean100"])
        row["Train/env_steps_per_s"] = self.env_steps / max(wall, 1e-9)
        return row

    def train(self) -> None:
        cfg = self.cfg.run
        start = time.perf_counter() - self.wall_offset
        bar = tqdm(
            total=cfg.total_env_steps,
            initial=self.env_steps,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        try:
            while True:
                wall = time.perf_counter() - start
                out_of_time = cfg.max_wall_time_s is not None and wall >= cfg.max_wall_time_s
                # Collective: ranks' clocks differ, and all must stop at the same iteration.
                if distributed.any_rank(self.env_steps >= cfg.total_env_steps or out_of_time):
                    break
                before = self.env_steps
                metrics = self.algo.iterate()
                self.iteration += 1
                wall = time.perf_counter() - start
                row = self._row(metrics, wall)
                if cfg.eval_every and self.iteration % cfg.eval_every == 0 and self.main:
                    ev = evaluate(
                        self.actor, self.cfg.env.task, cfg.eval_episodes, cfg.seed + 1, True,
                        task_options=self.task_options,
                    )  # fmt: skip
                    row["Eval/return"] = ev["return_mean"]
                self.log.log(row)
                if self.callback is not None:
                    self.callback(row)
                bar.update(self.env_steps - before)
                bar.set_postfix(ret=f"{row.get('Train/return_mean100', float('nan')):.1f}", refresh=False)
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save(wall)
        except KeyboardInterrupt:
            bar.write("interrupted: saving a checkpoint (resume with --resume)")
            self.save(time.perf_counter() - start)
            bar.close()
            raise
        bar.close()
        self.save(time.perf_counter() - start)

    def finish(self) -> dict:
        """Evaluate (zero-noise and stochastic), write summary.json and the learning-curve PNG (rank 0;
        the other ranks only close their envs and return an empty dict)."""
        cfg, info = self.cfg, self.task.info
        if not self.main:
            self.env.close()
            return {}
        det, sto = (
            evaluate(
                self.actor,
                cfg.env.task,
                cfg.run.eval_episodes,
                cfg.run.seed + 1,
                deterministic=zero,
                task_options=self.task_options,
            )
            for zero in (True, False)
        )
        wall = self.log.rows[-1]["Train/wall_time_s"] if self.log.rows else 0.0
        # The policy as trained samples its noise; zero noise is reported beside it. For flows the
        # all-zero noise is far from the Gaussian's typical set (|ε| ≈ √(C·m)), and RFO-trained quadruped
        # flows fall from it while their sampled actions walk, so it is not the headline number.
        final = sto["return_mean"]
        summary = {
            "algo": cfg.algo,
            "task": cfg.env.task,
            "robot": self.task_options.get("robot", {}).get("name"),
            "seed": cfg.run.seed,
            "config_hash": cfg.digest(),
            "commit": self.commit,
            "final_return": final,
            "final_return_zero_noise": det["return_mean"],
            "best_return": max(self.best_return, final),
            "eval": {"zero_noise": det, "stochastic": sto},
            "env_steps": self.env_steps,
            "wall_time_s": wall,
            "iterations": self.iteration,
            "env_steps_per_s": self.env_steps / max(wall, 1e-9),
            "world_size": self.world,
            "device": str(self.device),
            "solved_threshold": info.solved_return,
            "random_return": info.random_return,
            "solved": self.task.solved(sto),
            "solved_rule": self.task.solved_rule,
            "nan_skips": self.algo.optim.skipped,
            "divergences": self.env.stats.divergences,
            "time_split_s": self.time_split(),
            "route": self.route(wall),
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.log.close()
        learning_curve(
            {
                f"{cfg.algo} (train, mean of last 100)": self.log.series("Train/return_mean100"),
                "eval (zero noise)": self.log.series("Eval/return"),
            },
            f"{cfg.algo} on {cfg.env.task}",
            self.out_dir / "learning_curve.png",
            info.solved_return,
            secondary={key.split("/")[-1]: self.log.series(key) for key in self.task.train_metrics()},
        )
        self.env.close()
        return summary

    def route(self, wall: float) -> list[dict]:
        """The stages that made the actor as it is now: the earlier ones, then this run."""
        extra = self.algo.stage_info() if hasattr(self.algo, "stage_info") else {}
        here = stage(self.cfg.algo, self.env_steps, wall, str(self.device), seed=self.cfg.run.seed,
                     config_hash=self.cfg.digest(), **extra)  # fmt: skip
        return [*self.route_before, here]

    def time_split(self) -> dict[str, float]:
        """Where the training wall time went, summed over iterations (seconds; see ``split_time``)."""
        totals: dict[str, float] = {}
        for row in self.log.rows:
            for key, value in row.items():
                if key.startswith("Perf/"):
                    totals[key] = totals.get(key, 0.0) + value
        return split_time(totals)

    def write_config(self) -> None:
        if not self.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        if "robot" in self.task_options:  # the resolved description: --resume reads this copy
            robot = yaml.safe_dump(self.task_options["robot"], sort_keys=False)
            (self.out_dir / ROBOT_RUN_FILE).write_text(robot)
