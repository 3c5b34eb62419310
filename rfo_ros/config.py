"""Training configuration: typed, validated, resolved and saved with every run.

YAML in, ``TrainConfig`` out. Unknown keys and wrong types are errors that name the field, the
value and the valid keys (pydantic, ``extra="forbid"``, strict scalars). ``--set a.b=value``
overrides are parsed as YAML scalars and validated the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rfo_ros.envs.legged_obs import check_privileged_fields
from rfo_ros.randomization import Randomization


class ConfigError(ValueError):
    """The training configuration is invalid (message lists every problem)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GradientModelConfig(_Section):
    """The world the differentiable methods' Jacobians are taken on (rfo_ros/sim/gradient_model.py):
    contacts from a distance and/or a gradient twin at the control rate; the simulation itself never
    changes. Off (margin 0, scale 1, no twin) by default."""

    margin: float = Field(0.0, ge=0, description="contact forces act from this distance (m)")
    timeconst_scale: float = Field(1.0, gt=0, description="factor on each contact time constant (>1: softer)")
    geoms: tuple[str, ...] = Field((), description="the geoms (names) it changes, e.g. the feet; empty: all")
    steps: int = Field(
        0,
        ge=0,
        description="a gradient twin: this many steps of (control period / steps) per control step stand in "
        "for the simulator's substeps in the Jacobians (0: the simulator's own steps)",
    )
    integrator: Literal["euler", "implicit", "implicitfast"] | None = Field(
        None, description="the twin's integrator (None: the model's own)"
    )
    cone: Literal["pyramidal", "elliptic"] | None = Field(None, description="the twin's friction cone")
    max_twin_error: float = Field(
        1.0,
        gt=0,
        description="refuse a twin whose control step misses the simulator's next velocities by more than "
        "this fraction of their change (rfo_ros/envs/twin_check.py)",
    )


class EnvConfig(_Section):
    task: str = "cartpole"
    robot: str | None = Field(
        None, description="robot file of env.task: legged (a path, or a name in config/robots)"
    )
    base_lin_vel: bool = Field(
        True,
        description="legged tasks observe the trunk's linear velocity (false: proprioception and IMU only, "
        "no odometry needed on the robot)",
    )
    obs_history: int = Field(
        1,
        ge=1,
        description="legged tasks: the policy observes its last K observation frames, oldest first (with "
        "base_lin_vel: false, past frames let it infer its speed)",
    )
    critic_obs: tuple[str, ...] | None = Field(
        None,
        description="privileged fields the critic observes after the actor's observation (asymmetric "
        "actor-critic; rfo_ros/envs/privileged.py: base_lin_vel, base_height, clean_obs, physics, latency, "
        "push); never exported. None: the robot file's critic_obs; []: the actor's observation alone",
    )
    randomization: Randomization = Field(
        default_factory=Randomization, description="per-env world perturbations (rfo_ros/randomization.py)"
    )
    action_rate: float = Field(
        0.0,
        ge=0,
        description="reward -w·|a_t - a_(t-1)|² in policy units (rfo_ros/envs/shaping.py): smooth commands; "
        "0 leaves it out",
    )
    course_levels: int = Field(
        0,
        ge=0,
        description="obstacle-course tasks: a block-height curriculum with this many levels, every env "
        "starting at the lowest (rfo_ros/envs/course_levels.py; training only, evaluation draws the full "
        "course); 0: off",
    )
    num_envs: int = Field(64, ge=1)
    threads: int | None = Field(None, ge=1, description="simulation threads (default: all cores)")
    fd_eps: float = Field(1e-6, gt=0)
    # Forward differences by default: ~1.8x cheaper than centered, and their ~1e-4-1e-3 relative error on
    # a 32-step return (tests/test_sim_grad.py) is far below the noise of a policy-gradient estimate.
    fd_centered: bool = False
    fd_overlap: bool = Field(
        True, description="compute Jacobians in background threads while the networks run (same result)"
    )
    gradient_model: GradientModelConfig = Field(
        default_factory=GradientModelConfig,
        description="contacts that act from a distance, for the Jacobians only (RFO, SHAC, SAPO)",
    )
    jacobians: Literal["fd", "hybrid"] = Field(
        "fd",
        description="step Jacobians: fd (mjd_transitionFD, every column) or hybrid (velocity and control "
        "columns exact, position columns by finite differences; rfo_ros/sim/jacobians.py)",
    )

    # Before pydantic's own type check, so a value of the wrong type is also told the valid fields.
    @field_validator("critic_obs", mode="before")
    @classmethod
    def _known_critic_fields(cls, value: Any) -> tuple[str, ...] | None:
        return None if value is None else check_privileged_fields(value)


class PolicyConfig(_Section):
    hidden: tuple[int, ...] = (256, 256)
    flow_steps: int = Field(4, ge=1, description="K integration steps of the flow")
    chunk: int = Field(1, ge=1, description="C actions per flow sample (rfo, fpo, distill)")
    solver: Literal["euler", "midpoint", "rk4", "dopri5"] = "euler"
    init_log_std: float = -0.5


class CriticConfig(_Section):
    hidden: tuple[int, ...] = (256, 256)
    lr: float = Field(1e-3, gt=0)
    iterations: int = Field(16, ge=1, description="critic minibatch updates per training iteration")
    minibatches: int = Field(4, ge=1)
    target_tau: float = Field(0.8, gt=0, le=1, description="Polyak rate of the target critic (SHAC: 0.8)")
    huber_delta: float | None = Field(
        None,
        gt=0,
        description="regress values with the Huber loss of this width instead of the squared error: "
        "errors past it count linearly, so a fall's large TD error (its value drops to 0) pulls no harder "
        "than an error of the width (on the race it did not help: docs/results). None: squared error",
    )
    ensemble: int = Field(1, ge=1, description="critics trained on the same targets, averaged (SAPO: 2)")


class DiffConfig(_Section):
    """Short-horizon reparameterized gradient (RFO, SHAC)."""

    horizon: int = Field(32, ge=1)
    actor_lr: float = Field(2e-3, gt=0)
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="linear: actor and critic lr fall linearly with env steps to lr_final_fraction of "
        "their start at run.total_env_steps (SHAC's schedule)",
    )
    lr_final_fraction: float = Field(0.1, ge=0, le=1)
    adam_betas: tuple[float, float] = (0.7, 0.95)
    optimizer: Literal["adam", "adamw"] = Field("adam", description="actor optimiser (SAPO: adamw)")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay (AdamW)")
    grad_clip: float = Field(1.0, gt=0)
    lambda_stab: float = Field(0.2, ge=0)
    lambda_expl: float = Field(0.2, ge=0)
    cfm_batch: int = Field(1024, ge=1, description="(o, z) pairs per CFM regulariser evaluation")
    expl_clip: float = Field(0.98, gt=0, lt=1, description="uniform actions are clipped before atanh")
    lambda_teacher: float = Field(
        0.0,
        ge=0,
        description="weight of L_teacher: flow matching towards distill.teacher's actions along each window "
        "(rfo_ros/algos/teacher_anchor.py); 0 is off",
    )
    lambda_fall: float = Field(
        0.0,
        ge=0,
        description="a differentiable fall barrier in RFO's window: every step's reward, as the actor's "
        "objective and the critic see it, less this weight times the task's fall proximity "
        "(rfo_ros/algos/fall_barrier.py; the training return reported is the task's own); 0 is off",
    )
    # Sample reuse (rfo_ros/algos/reuse.py): extra actor epochs on each window's stored adjoints.
    reuse_epochs: int = Field(
        1, ge=1, description="actor epochs per window: 1 is plain BPTT, M > 1 adds M-1 surrogate epochs"
    )
    reuse_until_env_steps: int | None = Field(
        None,
        ge=0,
        description="reuse only while the run has taken fewer env steps than this (all ranks), plain "
        "BPTT after: reuse buys the first climb, then its stale steps make the dip (docs/results); "
        "None reuses throughout",
    )
    reuse_minibatches: int = Field(1, ge=1, description="minibatches per reuse epoch")
    reuse_lr_scale: float = Field(1.0, gt=0, le=1, description="learning-rate factor of the reuse steps")
    reuse_max_latent_shift: float | None = Field(
        None, gt=0, description="drop samples whose latent moved more than this (RMS) since the rollout"
    )
    reuse_lambda_stab: float = Field(
        0.2, ge=0, description="weight of L_stab (towards the window's own (o, z)) in the reuse epochs"
    )
    adjoint_clip_quantile: float | None = Field(
        None, gt=0, le=1, description="clip each sample's dJ/dz at this quantile of their norms (all epochs)"
    )


class SapoConfig(_Section):
    """SAPO's maximum-entropy objective (``algo: sapo``)."""

    alpha_init: float = Field(0.05, gt=0, description="initial temperature")
    alpha_lr: float = Field(5e-3, gt=0, description="Adam learning rate of log(alpha)")
    target_entropy_per_dim: float = Field(-0.5, description="target entropy = this x action dim")


class OnPolicyConfig(_Section):
    """PPO and FPO."""

    rollout_steps: int = Field(32, ge=1, description="decisions per env per rollout (C control steps each)")
    epochs: int = Field(5, ge=1)
    minibatches: int = Field(4, ge=1)
    lr: float = Field(3e-4, gt=0)
    clip: float = Field(0.2, gt=0)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    value_coef: float = Field(0.5, ge=0)
    entropy_coef: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    fpo_mc_samples: int = Field(8, ge=1, description="N_mc (tau, eps) pairs per action")
    fpo_clip: float = Field(0.05, gt=0, description="FPO's ratio clip (PPO uses ``clip``)")


class DistillConfig(_Section):
    """Distillation into a flow student (``algo: distill``, ``rfo_ros/algos/distill.py``): DAgger with the
    flow-matching loss towards an exported teacher, which may observe the simulator's truth."""

    teacher: str | None = Field(
        None, description="the teacher: an exported policy (.onnx) of the same robot and action map"
    )
    horizon: int = Field(32, ge=1, description="control steps per window (a multiple of policy.chunk)")
    epochs: int = Field(4, ge=1, description="CFM epochs over each window's (observation, teacher chunk)s")
    minibatches: int = Field(4, ge=1)
    lr: float = Field(1e-3, gt=0)
    grad_clip: float = Field(1.0, gt=0)
    teacher_share_steps: int = Field(
        200_000, ge=0, description="env steps over which the share of envs the teacher drives goes 1 -> 0"
    )
    target_clip: float = Field(0.98, gt=0, lt=1, description="teacher actions are clipped before atanh")


class RslConfig(_Section):
    """rsl_rl's PPO (``algo: rsl_ppo``, ``rfo_ros/algos/rsl_ppo.py``), named as rsl_rl and Isaac Lab name
    them. Defaults: the legged-locomotion settings legged_gym, Isaac Lab and mjlab train with."""

    actor_hidden_dims: tuple[int, ...] = (512, 256, 128)
    critic_hidden_dims: tuple[int, ...] = (512, 256, 128)
    activation: Literal["elu", "relu", "tanh", "selu", "lrelu"] = "elu"
    init_noise_std: float = Field(1.0, gt=0, description="initial std of the Gaussian, in action units")
    num_steps_per_env: int = Field(24, ge=1)
    num_learning_epochs: int = Field(5, ge=1)
    num_mini_batches: int = Field(4, ge=1)
    clip_param: float = Field(0.2, gt=0)
    entropy_coef: float = Field(0.01, ge=0)
    value_loss_coef: float = Field(1.0, ge=0)
    use_clipped_value_loss: bool = True
    learning_rate: float = Field(1e-3, gt=0)
    schedule: Literal["adaptive", "fixed"] = Field(
        "adaptive", description="adaptive: lr /1.5 or x1.5 to hold the KL near desired_kl"
    )
    desired_kl: float = Field(0.01, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda (gamma is the top-level gamma)")


class RunConfig(_Section):
    seed: int = 0
    total_env_steps: int = Field(200_000, ge=1)
    max_wall_time_s: float | None = Field(None, gt=0)
    checkpoint_every: int = Field(20, ge=1, description="iterations between checkpoints")
    eval_episodes: int = Field(16, ge=1)
    eval_every: int = Field(0, ge=0, description="iterations between evaluations (0: only at the end)")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads while experience is collected")
    update_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op threads while an algorithm updates its networks (default: the "
        "simulation's threads, env.threads; rfo_ros.algos.threads)",
    )
    init_from: str | None = Field(
        None,
        description="start from this checkpoint's actor and critic (weights and normalisers; same algorithm "
        "and observations), e.g. a curriculum's earlier stage in an easier world; optimisers, envs and "
        "counters start afresh",
    )
    device: str = Field(
        "cpu",
        pattern=r"^(cpu|auto|cuda(:\d+)?)$",
        description="the networks' device: cpu, cuda (one GPU per torchrun rank), cuda:N or auto; the "
        "simulation always runs on CPU threads, and a CUDA request without CUDA falls back to the CPU",
    )


class TrainConfig(_Section):
    algo: Literal["rfo", "shac", "sapo", "fpo", "ppo", "rsl_ppo", "distill"] = "rfo"
    gamma: float = Field(0.99, gt=0, le=1)
    td_lambda: float = Field(0.95, ge=0, le=1)
    env: EnvConfig = EnvConfig()
    policy: PolicyConfig = PolicyConfig()
    critic: CriticConfig = CriticConfig()
    diff: DiffConfig = DiffConfig()
    sapo: SapoConfig = SapoConfig()
    onpolicy: OnPolicyConfig = OnPolicyConfig()
    rsl: RslConfig = RslConfig()
    distill: DistillConfig = DistillConfig()
    run: RunConfig = RunConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """Short hash of the resolved config (reported in summary.json)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def format_validation_errors(err: ValidationError, what: str, root: type[BaseModel]) -> str:
    """One line per problem of ``err`` (from validating ``root``), unknown keys with the valid ones."""
    lines = [f"invalid {what}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            section = _section_for(root, e["loc"][:-1])
            valid = ", ".join(sorted(section.model_fields)) if section else "?"
            lines.append(f"  {where}: unknown key (valid keys here: {valid})")
        else:
            lines.append(f"  {where} = {e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def _section_for(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    model = root
    for key in loc:
        field = model.model_fields.get(str(key))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    return model


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is not a section")
    node[keys[-1]] = value


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _yaml_scalar(raw: str) -> Any:
    """A YAML scalar, reading exponent floats such as ``1e-6`` (strings in YAML 1.1) as numbers."""
    value = yaml.safe_load(raw)
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict with YAML-typed values."""
    tree: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), _yaml_scalar(raw))
    return tree


def merge_trees(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge_trees(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def lists_to_tuples(tree: Any) -> Any:
    """YAML lists as tuples, recursively (the strict models take tuples)."""
    if isinstance(tree, dict):
        return {k: lists_to_tuples(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return tuple(lists_to_tuples(v) for v in tree)
    return tree


def build_config(tree: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate a nested dict into a ``TrainConfig`` (raises ``ConfigError``)."""
    try:
        return TrainConfig.model_validate(lists_to_tuples(tree))
    except ValidationError as err:
        raise ConfigError(format_validation_errors(err, f"training config ({source})", TrainConfig)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        source = str(path)
    return build_config(merge_trees(tree, parse_overrides(overrides or [])), source)
