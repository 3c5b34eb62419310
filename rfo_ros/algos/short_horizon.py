"""Short-horizon reparameterized policy gradient through the simulator (shared by RFO and SHAC).

From the current states of N envs, roll H steps with gradients flowing through the policy's
sampler and the simulator; maximise ``J = (1/NH) Σ_env [Σ_t γ^t r_t + γ^k V_φ̄(s_k)]`` where each
episode piece closes at a reset (bootstrapping only at truncation) or at the window's end. The
critic learns TD(λ) targets from the same window. RFO, SHAC and SAPO differ only in the actor (flow
vs tanh-Gaussian), the extra loss terms (RFO: the CFM regularisers) and the reward bonus (SAPO: the
entropy, which then also enters the critic's targets). ``SampleReuse`` takes the window's own update
and, with ``diff.reuse_epochs > 1``, more actor epochs on the window's stored adjoints.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.reuse import SampleReuse, WindowSamples
from rfo_ros.algos.threads import torch_threads, update_thread_count
from rfo_ros.config import TrainConfig
from rfo_ros.distributed import world_size
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


class LossTerm(Protocol):
    """An extra actor loss (e.g. a CFM regulariser) over the window's (obs, latent) samples.

    ``weight`` applies in the window's back-propagated step, ``reuse_weight`` in the reuse epochs
    (``SampleReuse``); ``end_iteration`` runs between the two.
    """

    name: str
    weight: float
    reuse_weight: float

    def loss(self, actor: Actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None: ...
    def end_iteration(self, obs: torch.Tensor, z: torch.Tensor) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class RewardBonus(Protocol):
    """A per-sample bonus added to the reward of the step that drew the sample (SAPO: entropy)."""

    def reward(self, actor: Actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Differentiable bonus (N,) for raw observations (N, D) and sampled latents (N, C, m)."""
        ...

    def end_iteration(self) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class NoBonus:
    """The plain objective: the reward alone."""

    def reward(self, actor: Actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)

    def end_iteration(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ShortHorizonRPG:
    """The differentiable training loop; algorithms plug in ``terms`` (extra actor losses) and a
    ``bonus`` (reward shaping by the policy itself); ``SampleReuse`` decides how often each window's
    adjoints are used."""

    def __init__(
        self,
        cfg: TrainConfig,
        env: VecEnv,
        actor: Actor,
        critic: CriticLearner,
        terms: list[LossTerm],
        bonus: RewardBonus | None = None,
    ) -> None:
        self.cfg, self.env, self.actor, self.critic, self.terms = cfg, env, actor, critic, terms
        self.bonus = bonus or NoBonus()
        self.optim = GuardedOptimizer(
            actor.policy.parameters(),
            lr=cfg.diff.actor_lr,
            clip=cfg.diff.grad_clip,
            betas=cfg.diff.adam_betas,
            kind=cfg.diff.optimizer,
            weight_decay=cfg.diff.weight_decay,
        )
        self.update = SampleReuse(cfg.diff, actor, self.optim)
        self.update_threads = update_thread_count(cfg.run.update_threads, env)
        self.obs = env.reset()
        self.critic_obs = env.critic_view(self.obs)

    def lr_factor(self) -> float:
        """The schedule's multiplier of the initial learning rates at the env's current step count
        (``VecEnv.stats``, which checkpoints carry, so a resumed run continues the schedule)."""
        d = self.cfg.diff
        if d.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, self.run_env_steps() / self.cfg.run.total_env_steps)
        return 1.0 - (1.0 - d.lr_final_fraction) * progress

    def run_env_steps(self) -> int:
        """The run's env steps so far, over every rank (schedules count in these)."""
        return self.env.stats.env_steps * world_size()

    def _window(self) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[torch.Tensor], WindowSamples]:
        """Roll H steps with grad; returns the objective J, the detached window data, the sampled
        latents (still in the graph, one (N, C, m) tensor per chunk boundary) and the samples."""
        cfg, env, actor = self.cfg, self.env, self.actor
        n, horizon, chunk, gamma = env.num_envs, cfg.diff.horizon, actor.chunk, cfg.gamma
        env.detach()
        obs = self.obs
        ret = torch.zeros(n, device=obs.device)
        discount = torch.ones(n, device=obs.device)
        objective = torch.zeros((), device=obs.device)
        rec: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "critic_obs", "rew", "term", "done", "z_obs", "z", "noise")
        }
        # Each step's bootstrap: the critic's view of the state reached (in the graph), and the weight
        # that state's value carries in J (its discount where an episode piece closes there, else 0).
        # The values are taken after the loop, for all steps in one batch.
        final_views, boot_weights = [], []
        critic_obs = self.critic_obs
        latents = []
        for t in range(horizon):
            if t % chunk == 0:
                noise = actor.policy.sample_noise(n).to(obs.device)  # drawn on the CPU on every device
                actions, z = actor(obs, noise)
                bonus = self.bonus.reward(actor, obs, z)
                latents.append(z)
                rec["z_obs"].append(obs.detach())
                rec["z"].append(z.detach())
                rec["noise"].append(noise)
            res = env.step(actions[:, t % chunk])
            reward = res.reward + bonus
            bonus = torch.zeros_like(bonus)  # the bonus belongs to the step that drew the sample
            done = res.terminated | res.truncated
            closing = torch.ones_like(done) if t == horizon - 1 else done
            bootstrap = ~res.terminated & ~res.diverged
            ret = ret + discount * reward
            discount = discount * gamma
            objective = objective + torch.where(closing, ret, torch.zeros_like(ret)).sum()
            # Privileged fields that depend on the state (the trunk's velocity) pass the gradient on.
            final_views.append(res.final_critic_obs)
            boot_weights.append(torch.where(closing & bootstrap, discount, torch.zeros_like(discount)))
            ret = torch.where(done, torch.zeros_like(ret), ret)
            discount = torch.where(done, torch.ones_like(discount), discount)
            for key, value in (
                ("obs", obs),
                ("critic_obs", critic_obs),
                ("rew", reward),
                ("term", res.terminated),
                ("done", done),
            ):
                rec[key].append(value.detach())
            obs, critic_obs = res.obs, res.critic_obs
        self.obs, self.critic_obs = obs.detach(), critic_obs.detach()
        v_final = self.critic.target(self.critic.normalizer(torch.stack(final_views)))  # (H, N)
        weight = torch.stack(boot_weights)
        objective = objective + torch.where(weight > 0, weight * v_final, torch.zeros_like(v_final)).sum()
        data = {k: torch.stack(v) for k, v in rec.items() if k not in ("z_obs", "z", "noise")}
        data["v_next"] = v_final.detach()
        data["z_obs"] = torch.cat(rec["z_obs"])
        data["z"] = torch.cat(rec["z"])
        samples = WindowSamples(data["z_obs"], torch.cat(rec["noise"]), data["z"])
        return objective / (n * horizon), data, latents, samples

    def iterate(self) -> dict[str, float]:
        lr_factor = self.lr_factor()
        self.update.set_env_steps(self.run_env_steps())
        self.optim.scale_lr(lr_factor)
        self.critic.optim.scale_lr(lr_factor)
        t0 = time.perf_counter()
        timing = self.env.sim.timing
        fd_before = timing.copy()
        objective, data, latents, samples = self._window()
        t_rollout = time.perf_counter() - t0
        wait_in_rollout = timing["fd_wait"] - fd_before["fd_wait"]  # inline Jacobians
        with torch_threads(self.update_threads):
            metrics = self._update(objective, data, latents, samples, lr_factor)
        fd_after = timing.copy()
        metrics.update(
            {
                "Policy/lr": self.optim.base_lr * lr_factor,
                "Train/reward_mean": float(data["rew"].mean()),
                "Perf/rollout_s": t_rollout,
                "Perf/sim_step_s": fd_after["step"] - fd_before["step"],
                "Perf/sim_jacobian_s": fd_after["fd"] - fd_before["fd"],
                "Perf/jacobian_wait_s": fd_after["fd_wait"] - fd_before["fd_wait"],
                "Perf/jacobian_wait_rollout_s": wait_in_rollout,
            }
        )
        return metrics

    def _update(
        self,
        objective: torch.Tensor,
        data: dict[str, torch.Tensor],
        latents: list[torch.Tensor],
        samples: WindowSamples,
        lr_factor: float,
    ) -> dict[str, float]:
        """The window's actor step (and reuse epochs), then the critic's fit and the normaliser."""
        metrics: dict[str, float] = {"Loss/actor": float(-objective.detach())}
        extras = []
        for term in (t for t in self.terms if t.weight > 0):
            term_loss = term.loss(self.actor, data["z_obs"], data["z"])
            if term_loss is not None:
                extras.append(term.weight * term_loss)
                metrics[f"Loss/{term.name}"] = float(term_loss.detach())
        t1 = time.perf_counter()
        grad_norm, applied = self.update.first_step(objective, extras, latents, samples)
        t_backward = time.perf_counter() - t1
        for term in self.terms:
            term.end_iteration(data["z_obs"], data["z"])
        t_reuse = time.perf_counter()
        metrics.update(self.update.reuse(samples, self.terms, lr_factor))
        metrics.update(self.bonus.end_iteration())
        t_reuse = time.perf_counter() - t_reuse

        t2 = time.perf_counter()
        metrics["Loss/critic"] = self.critic.fit_td(data, self.cfg.gamma, self.cfg.td_lambda)
        self.actor.normalizer.update(data["obs"].reshape(-1, data["obs"].shape[-1]))
        t_critic = time.perf_counter() - t2
        metrics.update(
            {
                "Policy/grad_norm_pre_clip": grad_norm,
                "Policy/update_applied": float(applied),
                "Perf/backward_s": t_backward,
                "Perf/critic_s": t_critic,
                "Perf/reuse_s": t_reuse,
            }
        )
        return metrics

    def stage_info(self) -> dict:
        """What the route records about this stage from its loss terms (an anchor's teacher)."""
        info: dict = {}
        for term in self.terms:
            if hasattr(term, "stage_info"):
                info.update(term.stage_info())
        return info

    def state_dict(self) -> dict:
        return {
            "optim": self.optim.state_dict(),
            "critic": self.critic.state_dict(),
            "terms": {t.name: t.state_dict() for t in self.terms},
            "bonus": self.bonus.state_dict(),
            "obs": self.obs,
            "critic_obs": self.critic_obs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state["optim"])
        self.critic.load_state_dict(state["critic"])
        for t in self.terms:
            t.load_state_dict(state["terms"][t.name])
        self.bonus.load_state_dict(state.get("bonus", {}))  # absent in checkpoints before SAPO
        self.obs = state["obs"].to(self.obs.device)
        # Checkpoints from before privileged critics: the critic's observation was the actor's.
        self.critic_obs = state.get("critic_obs", state["obs"]).to(self.obs.device)
