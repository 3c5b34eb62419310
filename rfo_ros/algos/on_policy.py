"""Clipped-surrogate on-policy learning on plain (non-differentiable) stepping: PPO and FPO.

The two share storage, GAE and the clipped update; they differ only in the likelihood ratio
(``RatioModel``): PPO uses log-probabilities of a tanh-Gaussian, FPO the flow-matching loss change.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.returns import gae
from rfo_ros.config import TrainConfig
from rfo_ros.distributed import batch_mean_std
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


class RatioModel(Protocol):
    """How an algorithm scores its own samples: stored at collection, compared at update."""

    clip: float

    def record(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample quantities of the behaviour policy (no grad), each with leading dim B."""
        ...

    def log_ratio(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor, old: dict) -> torch.Tensor:
        """log(π_θ / π_old) estimate per sample (B,), differentiable in θ."""
        ...

    def entropy(self, actor: Actor) -> torch.Tensor: ...


def clipped_surrogate(log_ratio: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's pessimistic clipped objective, negated into a loss (scalar)."""
    ratio = log_ratio.exp()
    return -torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv).mean()


class OnPolicyPG:
    """Collect ``rollout_steps`` x N transitions without grad, then clipped-surrogate epochs."""

    def __init__(self, cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner, ratio: RatioModel):
        self.cfg, self.env, self.actor, self.critic, self.ratio = cfg, env, actor, critic, ratio
        params = list(actor.policy.parameters()) + list(critic.critic.parameters())
        self.optim = GuardedOptimizer(params, lr=cfg.onpolicy.lr, clip=cfg.onpolicy.grad_clip)
        self.obs = env.reset()
        self.critic_obs = env.critic_view(self.obs)

    @torch.no_grad()
    def _collect(self) -> dict[str, torch.Tensor]:
        env, actor, critic, critic_norm = self.env, self.actor, self.critic.critic, self.critic.normalizer
        keys = ("obs_norm", "critic_obs_norm", "z", "rew", "term", "done", "value", "v_next", "old")
        rec: dict[str, list] = {k: [] for k in keys}
        obs, critic_obs = self.obs, self.critic_obs
        for _ in range(self.cfg.onpolicy.rollout_steps):
            obs_norm = actor.normalizer(obs)
            critic_obs_norm = critic_norm(critic_obs)
            actions, z = actor.policy(obs_norm)
            res = env.step(actions[:, 0])
            rec["obs_norm"].append(obs_norm)
            rec["critic_obs_norm"].append(critic_obs_norm)
            rec["z"].append(z)
            rec["old"].append(self.ratio.record(actor, obs_norm, z))
            rec["rew"].append(res.reward)
            rec["term"].append(res.terminated)
            rec["done"].append(res.terminated | res.truncated)
            rec["value"].append(critic(critic_obs_norm))
            rec["v_next"].append(critic(critic_norm(res.final_critic_obs)))
            actor.normalizer.update(obs)
            self.critic.update_normalizer(critic_obs)
            obs, critic_obs = res.obs, res.critic_obs
        self.obs, self.critic_obs = obs, critic_obs
        data = {k: torch.stack(v) for k, v in rec.items() if k != "old"}
        data["old"] = {k: torch.stack([o[k] for o in rec["old"]]) for k in rec["old"][0]}
        return data

    def iterate(self) -> dict[str, float]:
        c = self.cfg.onpolicy
        t0 = time.perf_counter()
        data = self._collect()
        t_collect = time.perf_counter() - t0
        adv = gae(
            data["rew"],
            data["value"],
            data["v_next"],
            data["term"],
            data["done"],
            self.cfg.gamma,
            c.gae_lambda,
        )
        returns = adv + data["value"]
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        obs_norm, z, adv, returns = flat(data["obs_norm"]), flat(data["z"]), flat(adv), flat(returns)
        critic_obs_norm = flat(data["critic_obs_norm"])
        old = {k: flat(v) for k, v in data["old"].items()}
        n = obs_norm.shape[0]
        size = max(1, n // c.minibatches)
        stats: dict[str, list[float]] = {
            "Loss/policy": [],
            "Loss/value": [],
            "Policy/approx_kl": [],
            "Policy/clipfrac": [],
            "Policy/grad_norm_pre_clip": [],
        }
        for _ in range(c.epochs):
            perm = torch.randperm(n)
            for start in range(0, n - size + 1, size):
                idx = perm[start : start + size]
                mb_adv = adv[idx]
                mean, std = batch_mean_std(mb_adv)  # the whole minibatch's, over every rank
                mb_adv = (mb_adv - mean) / (std + 1e-8)
                log_ratio = self.ratio.log_ratio(
                    self.actor, obs_norm[idx], z[idx], {k: v[idx] for k, v in old.items()}
                )
                policy_loss = clipped_surrogate(log_ratio, mb_adv, self.ratio.clip)
                value_loss = ((self.critic.critic(critic_obs_norm[idx]) - returns[idx]) ** 2).mean()
                loss = (
                    policy_loss + c.value_coef * value_loss - c.entropy_coef * self.ratio.entropy(self.actor)
                )
                grad_norm, _ = self.optim.step(loss)
                with torch.no_grad():
                    stats["Policy/approx_kl"].append(float(((log_ratio.exp() - 1) - log_ratio).mean()))
                    stats["Policy/clipfrac"].append(
                        float(((log_ratio.exp() - 1).abs() > self.ratio.clip).float().mean())
                    )
                stats["Loss/policy"].append(policy_loss.item())
                stats["Loss/value"].append(value_loss.item())
                stats["Policy/grad_norm_pre_clip"].append(grad_norm)
        metrics = {k: sum(v) / len(v) for k, v in stats.items()}
        var = returns.var()
        metrics["Policy/explained_variance"] = float(1 - (returns - flat(data["value"])).var() / (var + 1e-8))
        metrics["Train/reward_mean"] = float(data["rew"].mean())
        metrics["Perf/rollout_s"] = t_collect
        metrics["Perf/update_s"] = time.perf_counter() - t0 - t_collect
        return metrics

    def state_dict(self) -> dict:
        return {
            "optim": self.optim.state_dict(),
            "critic": self.critic.state_dict(),
            "obs": self.obs,
            "critic_obs": self.critic_obs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state["optim"])
        self.critic.load_state_dict(state["critic"])
        self.obs = state["obs"].to(self.obs.device)
        # Checkpoints from before privileged critics: the critic's observation was the actor's.
        self.critic_obs = state.get("critic_obs", state["obs"]).to(self.obs.device)
