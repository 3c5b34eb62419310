"""Distillation of a teacher into a flow student: DAgger with the flow-matching loss (``algo: distill``).

Each iteration rolls ``distill.horizon`` control steps without gradients. The student samples an action
chunk of C steps and executes it open loop, as it will on the robot; in a fraction β of the envs the
teacher acts instead (β falls linearly from 1 to 0 over ``distill.teacher_share_steps`` env steps, so the
student first sees the teacher's states, then its own: DAgger). Whoever acts, the teacher labels every
step it visits (``rfo_ros.algos.teacher.OnnxTeacher``: it may observe the simulator's truth, which never
enters the student's observation). The student's target for the chunk drawn at step t is the teacher's
actions at t, ..., t+C-1 along the executed trajectory, and it learns them with conditional flow
matching, ``L_CFM`` of ``rfo_ros.algos.cfm``: a flow learns the teacher's action distribution, not just
its mean. Chunks cut by a reset are dropped.

The critic is trained on the same windows (TD(λ) on the env's reward), so a later RFO stage
(``run.init_from`` this run's checkpoint) starts with a value function of the distilled policy.
"""

from __future__ import annotations

import time

import torch

from rfo_ros.algos.cfm import cfm_loss
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.teacher import OnnxTeacher
from rfo_ros.algos.threads import torch_threads, update_thread_count
from rfo_ros.config import TrainConfig
from rfo_ros.distributed import world_size
from rfo_ros.envs.device_env import DeviceEnv
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def chunk_targets(
    teacher_actions: torch.Tensor, done: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's chunk at every chunk boundary of a window, and which chunks are whole.

    Args:
        teacher_actions: (T, N, m) the teacher's action at each visited state; T a multiple of ``chunk``.
        done: (T, N) an episode ended at this step (the next state is a fresh episode's).
        chunk: C.
    Returns:
        targets (T/C, N, C, m) and valid (T/C, N): no episode ended inside the chunk before its last step.
    """
    steps, n, m = teacher_actions.shape
    blocks = steps // chunk
    targets = teacher_actions.reshape(blocks, chunk, n, m).permute(0, 2, 1, 3)
    ended_inside = done.reshape(blocks, chunk, n)[:, :-1].any(dim=1)
    return targets, ~ended_inside


class Distillation:
    """``algo: distill``: the student (a flow actor, any chunk C) learns the teacher's actions (DAgger)."""

    def __init__(
        self, cfg: TrainConfig, env: VecEnv | DeviceEnv, actor: Actor, critic: CriticLearner
    ) -> None:
        d = cfg.distill
        if d.teacher is None:
            raise ValueError("algo distill needs distill.teacher: the exported teacher policy (.onnx)")
        if d.horizon % actor.chunk:
            raise ValueError(f"distill.horizon {d.horizon} must be a multiple of policy.chunk {actor.chunk}")
        self.cfg, self.env, self.actor, self.critic = cfg, env, actor, critic
        sim_env = env.env if isinstance(env, DeviceEnv) else env
        self.teacher = OnnxTeacher(d.teacher, sim_env, seed=cfg.run.seed)
        self.optim = GuardedOptimizer(actor.policy.parameters(), lr=d.lr, clip=d.grad_clip)
        self.update_threads = update_thread_count(cfg.run.update_threads, env)
        self.obs = env.reset()
        self.critic_obs = env.critic_view(self.obs)

    def teacher_share(self) -> float:
        """β: the fraction of envs the teacher drives in the next window."""
        steps = self.cfg.distill.teacher_share_steps
        if steps == 0:
            return 0.0
        return max(0.0, 1.0 - self.env.stats.env_steps * world_size() / steps)

    @torch.no_grad()
    def _window(self) -> dict[str, torch.Tensor]:
        env, actor, critic = self.env, self.actor, self.critic
        n, chunk = env.num_envs, actor.chunk
        driven = torch.rand(n) < self.teacher_share()  # the envs the teacher drives this window
        keys = ("obs", "critic_obs", "teacher", "rew", "term", "done", "v_next")
        rec: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        obs, critic_obs = self.obs, self.critic_obs
        for t in range(self.cfg.distill.horizon):
            if t % chunk == 0:
                actions, _ = actor(obs)
            teacher_action = self.teacher.act(obs.cpu()).to(obs.device)
            executed = torch.where(driven[:, None].to(obs.device), teacher_action, actions[:, t % chunk])
            res = env.step(executed)
            for key, value in (
                ("obs", obs),
                ("critic_obs", critic_obs),
                ("teacher", teacher_action),
                ("rew", res.reward),
                ("term", res.terminated),
                ("done", res.terminated | res.truncated),
                ("v_next", critic.target(critic.normalizer(res.final_critic_obs))),
            ):
                rec[key].append(value)
            obs, critic_obs = res.obs, res.critic_obs
        self.obs, self.critic_obs = obs, critic_obs
        window = {k: torch.stack(v) for k, v in rec.items()}
        window["driven"] = driven
        return window

    def _fit_student(self, window: dict[str, torch.Tensor]) -> float:
        """CFM epochs towards the teacher's chunks; the mean loss of the last epoch."""
        d, chunk = self.cfg.distill, self.actor.chunk
        targets, valid = chunk_targets(window["teacher"], window["done"], chunk)
        obs = window["obs"][::chunk][valid]  # the observation each chunk was drawn from
        action = targets[valid].clamp(-d.target_clip, d.target_clip)
        z = torch.atanh(action)  # the flow's latent: a = tanh(z)
        obs_norm = self.actor.normalizer(obs)
        size = max(1, obs.shape[0] // d.minibatches)
        losses: list[float] = []
        for _ in range(d.epochs):
            losses = []
            for idx in torch.randperm(obs.shape[0]).split(size):
                loss = cfm_loss(self.actor.policy, obs_norm[idx], z[idx])
                self.optim.step(loss)
                losses.append(float(loss.detach()))
        return sum(losses) / max(1, len(losses))

    def iterate(self) -> dict[str, float]:
        timing = self.env.sim.timing
        step_before = timing["step"]
        t0 = time.perf_counter()
        window = self._window()
        t_rollout = time.perf_counter() - t0
        with torch_threads(self.update_threads):
            t1 = time.perf_counter()
            student_loss = self._fit_student(window)
            t_student = time.perf_counter() - t1
            t2 = time.perf_counter()
            critic_loss = self.critic.fit_td(window, self.cfg.gamma, self.cfg.td_lambda)
            self.actor.normalizer.update(window["obs"].reshape(-1, window["obs"].shape[-1]))
            t_critic = time.perf_counter() - t2
        return {
            "Loss/distill_cfm": student_loss,
            "Loss/critic": critic_loss,
            "Policy/teacher_share": float(window["driven"].float().mean()),
            "Train/reward_mean": float(window["rew"].mean()),
            "Perf/rollout_s": t_rollout,
            "Perf/sim_step_s": timing["step"] - step_before,
            "Perf/backward_s": t_student,
            "Perf/critic_s": t_critic,
        }

    def stage_info(self) -> dict:
        """What the route records about this stage beyond algorithm, steps and time: the teacher."""
        return {"teacher": self.teacher.describe()}

    def state_dict(self) -> dict:
        return {
            "optim": self.optim.state_dict(),
            "critic": self.critic.state_dict(),
            "obs": self.obs,
            "critic_obs": self.critic_obs,
            "teacher_rng": self.teacher.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state["optim"])
        self.critic.load_state_dict(state["critic"])
        self.obs = state["obs"].to(self.obs.device)
        self.critic_obs = state["critic_obs"].to(self.obs.device)
        self.teacher.rng.bit_generator.state = state["teacher_rng"]


def make_distill(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> Distillation:
    return Distillation(cfg, env, actor, critic)
