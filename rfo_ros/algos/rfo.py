"""RFO: the short-horizon reparameterized gradient through a flow policy, plus CFM regularisers.

``λ_stab = λ_expl = 0`` is the "naive flow RPG" ablation. ``diff.reuse_epochs > 1`` reuses each
window's adjoints (``rfo_ros/algos/reuse.py``), with L_stab towards the window's own pairs as the
trust region (weight ``diff.reuse_lambda_stab``). ``diff.lambda_teacher > 0`` anchors a fine-tuned student
to ``distill.teacher`` (``rfo_ros/algos/teacher_anchor.py``); ``diff.lambda_fall > 0`` adds a
differentiable fall barrier to the window's rewards (``rfo_ros/algos/fall_barrier.py``).
"""

from __future__ import annotations

from rfo_ros.algos.cfm import ExplorationRegularizer, StabilityRegularizer
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.fall_barrier import FallBarrier
from rfo_ros.algos.short_horizon import LossTerm, ShortHorizonRPG
from rfo_ros.algos.teacher import OnnxTeacher
from rfo_ros.algos.teacher_anchor import TeacherAnchor, TeacherLabels
from rfo_ros.config import TrainConfig
from rfo_ros.envs.device_env import DeviceEnv
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def make_rfo(
    cfg: TrainConfig, env: VecEnv | DeviceEnv, actor: Actor, critic: CriticLearner
) -> ShortHorizonRPG:
    d = cfg.diff
    sim_env = env.env if isinstance(env, DeviceEnv) else env
    reuse_stab = d.reuse_lambda_stab if d.reuse_epochs > 1 else 0.0
    terms: list[LossTerm] = [
        StabilityRegularizer(d.lambda_stab, d.cfm_batch, reuse_stab),
        ExplorationRegularizer(d.lambda_expl, d.cfm_batch, d.expl_clip),
    ]
    if d.lambda_fall > 0:
        env = FallBarrier(env, d.lambda_fall)
    if d.lambda_teacher > 0:
        if cfg.distill.teacher is None:
            raise ValueError(
                "diff.lambda_teacher > 0 needs distill.teacher: the exported teacher policy (.onnx)"
            )
        if d.horizon % actor.chunk:
            raise ValueError(
                f"diff.lambda_teacher needs diff.horizon {d.horizon} a multiple of policy.chunk {actor.chunk}"
            )
        env = TeacherLabels(env, OnnxTeacher(cfg.distill.teacher, sim_env, seed=cfg.run.seed), d.horizon)
        terms.append(TeacherAnchor(d.lambda_teacher, d.cfm_batch, env, actor.chunk, cfg.distill.target_clip))
    return ShortHorizonRPG(cfg, env, actor, critic, [t for t in terms if t.weight > 0 or t.reuse_weight > 0])
