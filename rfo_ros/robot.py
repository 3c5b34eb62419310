"""Robots as data: a legged robot is an MJCF plus one YAML description (``config/robots/<name>.yaml``).

``RobotDescription`` is the YAML, validated by pydantic like the training config (unknown keys and wrong
types are errors that name the field). ``Robot.load(source)`` binds a description to its MuJoCo model
and checks every name against it: the trunk body, the policy joints and their position actuators, the
standing pose against the joint ranges, the feet. Every problem is a ``RobotError`` that lists the valid
names, so a typo in a joint name costs one read of the message.

The generic legged task (``rfo_ros.envs.legged_walk``), export (the robot contract in the ONNX metadata)
and the sim node read everything robot-specific from here: no joint name, pose or gain lives in code.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rfo_ros.envs.legged_obs import check_privileged_fields
from rfo_ros.paths import package_file

#: A training run folder's copy of its resolved robot description (``--resume`` reads it).
ROBOT_RUN_FILE = "robot.yaml"
#: Where robot files live (source tree, else the installed share dir); ``go1`` names ``go1.yaml`` there.
ROBOTS_DIR = "config/robots"


class RobotError(ValueError):
    """The robot description is invalid or does not match its MJCF (the message lists valid names)."""


class RobotWarning(UserWarning):
    """A robot file keeps a setting that likely does not fit the robot (``fit_warnings``)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StandingPose(_Section):
    """The joints' standing pose: an MJCF keyframe, or a value (rad) per policy joint."""

    keyframe: str | None = None
    values: dict[str, float] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> StandingPose:
        if (self.keyframe is None) == (self.values is None):
            raise ValueError("give exactly one of standing_pose.keyframe or standing_pose.values")
        return self


class PDGains(_Section):
    """Position-actuator gains, one value for every joint or one per joint (policy order)."""

    kp: float | tuple[float, ...]
    kd: float | tuple[float, ...]


class Termination(_Section):
    """Failure termination: trunk origin below ``min_height`` / above ``max_height`` (m; None: no
    upper limit), or tilted more than ``max_tilt_deg`` from upright."""

    min_height: float
    max_height: float | None = None
    max_tilt_deg: float = Field(60.0, gt=0, le=180)

    @field_validator("max_height")
    @classmethod
    def _no_infinity(cls, value: float | None) -> float | None:
        return None if value is not None and math.isinf(value) else value  # inf and None say the same


class Gait(_Section):
    """An open-loop stepping prior the policy's action adds to, and a clock the policy observes
    (``rfo_ros.envs.gait``): joint j's target gains ``lift_j · max(sin(2π(f·t + phase_j)), 0)``."""

    frequency_hz: float = Field(gt=0, description="steps per second of each leg")
    phase: tuple[float, ...] = Field(description="per policy joint: its leg's phase offset (cycles)")
    lift: tuple[float, ...] = Field(description="per policy joint: the offset at mid-swing (rad)")


class Control(_Section):
    """Control period = ``substeps`` × the MJCF timestep (the same target held over the substeps)."""

    substeps: int = Field(1, ge=1)


Range = tuple[float, float]


class Commands(_Section):
    """Velocity commands drawn per env at reset, uniform in [low, high]: body-frame vx, vy (m/s) and
    yaw rate (rad/s)."""

    vx: Range = (0.5, 1.5)
    vy: Range = (0.0, 0.0)
    yaw_rate: Range = (0.0, 0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Commands:
        for name in ("vx", "vy", "yaw_rate"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"commands.{name} = [{low}, {high}]: low > high")
        return self

    def ranges(self) -> tuple[Range, Range, Range]:
        return (self.vx, self.vy, self.yaw_rate)


class RewardWeights(_Section):
    """Weight of each velocity-tracking reward term (``LeggedWalk.reward_terms``); 0 switches one off.

    The defaults are the Go1-class quadruped's: a robot file that leaves them out gets that reward.
    """

    track_lin_vel: float = 1.5
    track_yaw_rate: float = 0.5
    height: float = 0.5
    orientation: float = -2.0
    lin_vel_z: float = -1.0
    ang_vel_xy: float = -0.05
    joint_vel: float = -1e-4
    torque: float = -2e-4


class RewardShape(_Section):
    """Kernel widths of the tracking and height terms.

    The tracking widths follow the robot's commands unless the file sets them (``RobotDescription``
    fills them in): σ_v is the typical commanded speed, so standing still at a typical command earns
    e⁻¹ ≈ 37 % of the tracking reward. The Go1-class quadruped's 0.5-1.5 m/s gives σ_v² = 1, wider than
    legged_gym's 0.25: at 1 m/s of error exp(-4) leaves a gradient-based learner almost no slope towards
    the command, exp(-1) a usable one.
    """

    lin_vel_sigma_sq: float = Field(gt=0, description="default: (typical commanded speed)², m²/s²")
    yaw_rate_sigma_sq: float = Field(gt=0, description="default: (typical commanded yaw rate, ≥ 0.5)²")
    height_width: float = Field(0.08, gt=0)


def typical_command(commands: Commands) -> tuple[float, float]:
    """The typical commanded planar speed (m/s) and yaw rate (rad/s): per entry the larger of the range's
    middle and its half-width (a range around zero is typically its half-width away from it)."""

    def typical(low: float, high: float) -> float:
        return max(abs(low + high) / 2, (high - low) / 2)

    return math.hypot(typical(*commands.vx), typical(*commands.vy)), typical(*commands.yaw_rate)


def default_tracking_widths(commands: Commands) -> tuple[float, float]:
    """``(lin_vel_sigma_sq, yaw_rate_sigma_sq)`` that ``commands`` give: the squares of the typical
    commanded speed (at least 0.1 m/s) and yaw rate (at least 0.5 rad/s)."""
    speed, yaw_rate = typical_command(commands)
    return max(speed, 0.1) ** 2, max(yaw_rate, 0.5) ** 2


class Reset(_Section):
    """Reset distribution around the standing pose."""

    joint_noise: float = Field(0.05, ge=0, description="uniform ± rad on every joint")
    velocity_noise: float = Field(0.05, ge=0, description="uniform ± on every velocity")
    random_heading: bool = False


class Episode(_Section):
    """Episode length (control steps), when a policy counts as solved, and documented returns.

    Solved is judged by tracking, never by a return (returns scale with each robot's reward): no falls,
    and the trunk's planar velocity within ``solved_tracking`` × the commanded speed on average.
    ``solved_return`` (optional) is a return documented for this robot: the dashed line of learning curves
    and the target of races.
    """

    length: int = Field(1000, ge=1)
    solved_tracking: float = Field(
        0.3, gt=0, lt=1, description="mean |command - velocity| at most this fraction of the mean command"
    )
    solved_return: float | None = None
    random_return: float = 0.0


class RobotDescription(_Section):
    """One legged robot, as ``config/robots/<name>.yaml`` describes it (README: "Bring your own robot")."""

    name: str
    mjcf: str = Field(description="a world name in sim/, or an .xml path (absolute or relative to the YAML)")
    trunk: str = Field(description="the body that carries the free joint")
    joints: tuple[str, ...] = Field(min_length=1, description="policy joints, joint_states names, in order")
    standing_pose: StandingPose
    action_scale: float | tuple[float, ...] = Field(description="target = pose + action_scale · action")
    pd_gains: Literal["actuators"] | PDGains = "actuators"
    feet: tuple[str, ...] = Field(min_length=1, description="foot geoms or bodies")
    height_band: Range = Field(description="trunk heights (m) rewarded as standing tall")
    start_height: float = Field(gt=0, description="trunk height at reset (m): dropped from there")
    termination: Termination
    control: Control = Control()
    commands: Commands = Commands()
    rewards: RewardWeights = RewardWeights()
    reward_shape: RewardShape  # the tracking widths default from ``commands`` (``RewardShape``)
    reset: Reset = Reset()
    episode: Episode = Episode()
    camera: str | None = Field(None, description="MJCF camera of image observations (depth tasks)")
    gait: Gait | None = Field(None, description="a stepping prior and clock for residual policies")
    critic_obs: tuple[str, ...] = Field(
        (), description="privileged fields a critic observes in training when the config names none"
    )

    @field_validator("critic_obs")
    @classmethod
    def _known_critic_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_privileged_fields(value)

    @model_validator(mode="before")
    @classmethod
    def _tracking_widths_follow_the_commands(cls, data: Any) -> Any:
        """Fill the tracking widths the file leaves out from its command ranges (``RewardShape``)."""
        if not isinstance(data, Mapping):
            return data
        shape = data.get("reward_shape") or {}
        if not isinstance(shape, Mapping) or not isinstance(data.get("commands", {}), Mapping):
            return data  # the field validators name what is wrong
        try:
            commands = Commands.model_validate(data.get("commands", {}))
        except ValidationError:
            return data
        lin_vel, yaw_rate = default_tracking_widths(commands)
        filled = {"lin_vel_sigma_sq": lin_vel, "yaw_rate_sigma_sq": yaw_rate}
        return {**data, "reward_shape": {**filled, **shape}}

    @model_validator(mode="after")
    def _consistent(self) -> RobotDescription:
        duplicated = sorted({j for j in self.joints if self.joints.count(j) > 1})
        if duplicated:
            raise ValueError(f"joints listed twice: {duplicated}")
        if self.height_band[0] > self.height_band[1]:
            raise ValueError(f"height_band = {list(self.height_band)}: low > high")
        per_joint = {"action_scale": self.action_scale}
        if self.gait is not None:
            per_joint.update({"gait.phase": self.gait.phase, "gait.lift": self.gait.lift})
        if isinstance(self.pd_gains, PDGains):
            per_joint.update({"pd_gains.kp": self.pd_gains.kp, "pd_gains.kd": self.pd_gains.kd})
        for name, value in per_joint.items():
            if isinstance(value, tuple) and len(value) != len(self.joints):
                raise ValueError(f"{name} has {len(value)} values for {len(self.joints)} joints")
        return self


#: A standing robot should earn at most this fraction of the tracking reward at a typical command.
STANDING_TRACKING_LIMIT = 0.5


def fit_warnings(description: RobotDescription) -> list[str]:
    """What in ``description`` likely does not fit its robot: the Go1-class quadruped's command ranges
    kept by default, or a velocity-tracking width that pays a robot standing still most of the reward."""
    out = []
    if "commands" not in description.model_fields_set:
        out.append(
            f"robot {description.name!r}: no `commands:` in the robot file, so it is commanded the default "
            f"{description.commands.vx[0]:g}-{description.commands.vx[1]:g} m/s (a Go1-class quadruped's "
            "speeds); set the speeds this robot can walk at"
        )
    speed, _ = typical_command(description.commands)
    sigma_sq = description.reward_shape.lin_vel_sigma_sq
    standing = math.exp(-(speed**2) / sigma_sq)
    if standing > STANDING_TRACKING_LIMIT:
        fitting, _ = default_tracking_widths(description.commands)
        out.append(
            f"robot {description.name!r}: reward_shape.lin_vel_sigma_sq = {sigma_sq:g} pays a robot standing "
            f"still {standing:.0%} of the velocity-tracking reward at its typical command ({speed:.2f} m/s); "
            f"leave it out to follow the commands (σ² = {fitting:.3g})"
        )
    return out


def robot_file(name_or_path: str | os.PathLike) -> Path:
    """A robot YAML path, or a name in ``config/robots`` (``go1`` -> ``config/robots/go1.yaml``)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(ROBOTS_DIR) / f"{path}.yaml"
    path = package_file(path)
    if not path.is_file():
        known = sorted(p.stem for p in package_file(ROBOTS_DIR).glob("*.yaml"))
        known_list = ", ".join(known) or "none"
        raise RobotError(f"robot file not found: {path} (robots in {ROBOTS_DIR}: {known_list})")
    return path


def read_description(source: str | os.PathLike | Mapping[str, Any] | RobotDescription) -> RobotDescription:
    """Parse a robot YAML (path or name), a dict or a description; relative MJCF paths are resolved
    against the YAML's folder (a world name in sim/ is kept as a name: portable across machines)."""
    if isinstance(source, RobotDescription):
        return source
    base: Path | None = None
    if isinstance(source, Mapping):
        tree, where = dict(source), "robot description"
    else:
        path = robot_file(source)
        try:
            tree = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise RobotError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise RobotError(f"{path}: a robot file is a YAML mapping, got {type(tree).__name__}")
        base, where = path.parent, str(path)
    from rfo_ros.config import format_validation_errors, lists_to_tuples

    try:
        description = RobotDescription.model_validate(lists_to_tuples(tree))
    except ValidationError as exc:
        message = format_validation_errors(exc, f"robot description ({where})", RobotDescription)
        raise RobotError(message) from None
    mjcf = Path(description.mjcf)
    if base is not None and mjcf.suffix == ".xml" and not mjcf.is_absolute():
        description = description.model_copy(update={"mjcf": str((base / mjcf).resolve())})
    return description


def description_tree(description: RobotDescription) -> dict[str, Any]:
    """The description as plain dicts, lists and numbers (YAML-, JSON- and checkpoint-safe). An unset
    ``gait`` is left out, so the trees of robots without one read as they did before the section existed
    (in checkpoints, models and config hashes)."""
    unset = {"gait"} if description.gait is None else None
    return json.loads(json.dumps(description.model_dump(exclude=unset)))


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def node_parameters(source: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """ROS parameters per node that bring up the robot file ``source`` (bringup and the launch file):
    the sim node simulates it, the policy node commands its joints in its order, at the middle of its
    command ranges."""
    description = read_description(source)
    vx, vy, yaw = (sum(r) / 2 for r in description.commands.ranges())
    return {
        "sim_node": {"robot": str(robot_file(source))},
        "policy_node": {
            "robot_joint_names": list(description.joints),
            "default_cmd_vx": float(vx),
            "default_cmd_vy": float(vy),
            "default_cmd_yaw_rate": float(yaw),
        },
    }


def _names(model, kind, count: int) -> list[str]:
    import mujoco

    return [n for n in (mujoco.mj_id2name(model, kind, i) for i in range(count)) if n]


@dataclass(frozen=True)
class Robot:
    """A ``RobotDescription`` bound to its MuJoCo model: ids, addresses, gains and limits, checked.

    Arrays are in policy-joint order (``description.joints``). ``ctrl_order[a]`` is the policy joint
    that actuator ``a`` drives (actuator controls = policy-order targets ``[:, ctrl_order]``).
    """

    description: RobotDescription
    model: Any  # mujoco.MjModel (gains already written into it when the description gives them)
    mjcf_path: Path
    joint_ids: np.ndarray
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    actuator_ids: np.ndarray
    ctrl_order: np.ndarray
    standing_pose: np.ndarray
    joint_lower: np.ndarray
    joint_upper: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    torque_limit: np.ndarray
    action_scale: np.ndarray

    @staticmethod
    def load(source: str | os.PathLike | Mapping[str, Any] | RobotDescription) -> Robot:
        """Read, load the MJCF and check the description against it (``RobotError`` on any mismatch)."""
        from rfo_ros.sim.worlds import load_model, world_path

        description = read_description(source)
        for message in fit_warnings(description):
            warnings.warn(message, RobotWarning, stacklevel=2)
        try:
            path = world_path(description.mjcf)
            model = load_model(path)
        except (FileNotFoundError, ValueError) as exc:
            raise RobotError(f"robot {description.name!r}: mjcf {description.mjcf!r}: {exc}") from exc
        return _bind(description, model, path)

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.description.joints

    @property
    def dt(self) -> float:
        """Control period (s)."""
        return float(self.model.opt.timestep) * self.description.control.substeps

    def standing_qpos(self) -> np.ndarray:
        """qpos (nq,) of the robot standing: trunk upright at ``start_height`` above the origin, policy
        joints at the standing pose, every other coordinate at the model's qpos0."""
        qpos = self.model.qpos0.copy()
        qpos[2] = self.description.start_height
        qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        qpos[self.qpos_adr] = self.standing_pose
        return qpos

    def contract(self) -> dict[str, Any]:
        """The JSON-able robot contract for the exported model's metadata (everything a deployment needs
        to drive this robot with that model)."""
        d = self.description
        return {
            "name": d.name,
            "trunk": d.trunk,
            "joint_names": list(d.joints),
            "default_joint_pos": self.standing_pose.tolist(),
            "action_scale": self.action_scale.tolist(),
            "action_formula": (
                "target = clip(default_joint_pos + action_scale * action, lower, upper)"
                if d.gait is None
                else "target = clip(default_joint_pos + gait_prior(gait_clock) + action_scale * action, "
                "lower, upper)"
            ),
            # null where a joint is unlimited: the metadata is strict JSON.
            "joint_lower": _finite_or_none(self.joint_lower),
            "joint_upper": _finite_or_none(self.joint_upper),
            "torque_limit": _finite_or_none(self.torque_limit),
            "kp": self.kp.tolist(),
            "kd": self.kd.tolist(),
            "dt": self.dt,
            "feet": list(d.feet),
            "height_band": list(d.height_band),
            "start_height": d.start_height,
            "termination": d.termination.model_dump(),
            "commands": {k: list(v) for k, v in d.commands.model_dump().items()},
            # The whole description: tools that rebuild the training task from a model (bench chunks,
            # latency) need nothing else; the MJCF itself is found by its world name or path.
            "description": description_tree(d),
        }


def _bind(d: RobotDescription, model, path: Path) -> Robot:
    import mujoco

    where = f"robot {d.name!r} ({path})"
    bodies = _names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)
    trunk = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, d.trunk)
    if trunk < 0:
        raise RobotError(f"{where}: trunk body {d.trunk!r} not in the MJCF; bodies: {', '.join(bodies)}")
    free = [
        j for j in range(model.njnt)
        if model.jnt_bodyid[j] == trunk and model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE
    ]  # fmt: skip
    if not free or model.jnt_qposadr[free[0]] != 0:
        raise RobotError(
            f"{where}: the trunk {d.trunk!r} must carry the model's first joint, a free joint "
            "(qpos[0:7] = trunk position and quaternion)"
        )

    scalar = {int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)}
    joint_names = [model.joint(j).name for j in range(model.njnt) if int(model.jnt_type[j]) in scalar]
    missing = [j for j in d.joints if j not in joint_names]
    if missing:
        raise RobotError(f"{where}: joints {missing} not in the MJCF; its joints: {', '.join(joint_names)}")
    joint_ids = np.array([model.joint(j).id for j in d.joints], dtype=np.intp)

    actuator_of = _position_actuators(model)
    unactuated = [j for j, jid in zip(d.joints, joint_ids, strict=True) if int(jid) not in actuator_of]
    if unactuated:
        have = [model.joint(j).name for j in sorted(actuator_of)]
        raise RobotError(
            f"{where}: joints {unactuated} have no position actuator (<position joint=...>); "
            f"joints with one: {', '.join(have) or 'none'}"
        )
    policy_ids = set(joint_ids.tolist())
    drives_policy_joint = [
        int(model.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT)
        and int(model.actuator_trnid[a, 0]) in policy_ids
        for a in range(model.nu)
    ]
    stray = [model.actuator(a).name or f"#{a}" for a in range(model.nu) if not drives_policy_joint[a]]
    if stray:
        raise RobotError(
            f"{where}: actuators {stray} drive no policy joint; every actuator must drive one of: "
            f"{', '.join(d.joints)}"
        )
    actuator_ids = np.array([actuator_of[int(j)] for j in joint_ids], dtype=np.intp)
    ctrl_order = np.empty(model.nu, dtype=np.intp)
    ctrl_order[actuator_ids] = np.arange(len(d.joints))

    lower, upper = model.jnt_range[joint_ids, 0].copy(), model.jnt_range[joint_ids, 1].copy()
    limited = model.jnt_limited[joint_ids].astype(bool)
    lower, upper = np.where(limited, lower, -np.inf), np.where(limited, upper, np.inf)
    pose = _standing_pose(d, model, joint_ids, where)
    outside = [
        f"{name} = {value:g} not in [{lo:g}, {hi:g}]"
        for name, value, lo, hi in zip(d.joints, pose, lower, upper, strict=True)
        if not lo <= value <= hi
    ]
    if outside:
        raise RobotError(f"{where}: standing pose outside the joint range: {'; '.join(outside)}")

    geoms = set(_names(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom))
    not_found = [f for f in d.feet if f not in geoms and f not in bodies]
    if not_found:
        raise RobotError(
            f"{where}: feet {not_found} are neither geoms nor bodies; "
            f"geoms: {', '.join(sorted(geoms))}; bodies: {', '.join(bodies)}"
        )
    if d.camera is not None and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, d.camera) < 0:
        cameras = _names(model, mujoco.mjtObj.mjOBJ_CAMERA, model.ncam)
        raise RobotError(
            f"{where}: camera {d.camera!r} not in the MJCF; cameras: {', '.join(cameras) or 'none'}"
        )

    n = len(d.joints)
    if d.pd_gains != "actuators":  # given gains replace the actuators' (MuJoCo position servo: bias -kp, -kv)
        kp = np.broadcast_to(np.asarray(d.pd_gains.kp, np.float64), (n,))
        kd = np.broadcast_to(np.asarray(d.pd_gains.kd, np.float64), (n,))
        model.actuator_gainprm[actuator_ids, 0] = kp
        model.actuator_biasprm[actuator_ids, 1] = -kp
        model.actuator_biasprm[actuator_ids, 2] = -kd
    kp = model.actuator_gainprm[actuator_ids, 0].copy()
    kd = -model.actuator_biasprm[actuator_ids, 2].copy()
    force_limited = model.actuator_forcelimited[actuator_ids].astype(bool)
    torque_limit = np.where(force_limited, model.actuator_forcerange[actuator_ids, 1], np.inf)
    return Robot(
        description=d,
        model=model,
        mjcf_path=path,
        joint_ids=joint_ids,
        qpos_adr=model.jnt_qposadr[joint_ids].copy(),
        dof_adr=model.jnt_dofadr[joint_ids].copy(),
        actuator_ids=actuator_ids,
        ctrl_order=ctrl_order,
        standing_pose=pose,
        joint_lower=lower,
        joint_upper=upper,
        kp=kp,
        kd=kd,
        torque_limit=torque_limit.astype(np.float64),
        action_scale=np.broadcast_to(np.asarray(d.action_scale, np.float64), (n,)).copy(),
    )


def _position_actuators(model) -> dict[int, int]:
    """joint id -> actuator id of every MuJoCo position servo on a joint (gain kp, bias (0, -kp, -kv))."""
    import mujoco

    out = {}
    for a in range(model.nu):
        servo = (
            int(model.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT)
            and int(model.actuator_gaintype[a]) == int(mujoco.mjtGain.mjGAIN_FIXED)
            and int(model.actuator_biastype[a]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
            and model.actuator_gainprm[a, 0] > 0
            and np.isclose(model.actuator_biasprm[a, 1], -model.actuator_gainprm[a, 0])
        )
        if servo:
            out[int(model.actuator_trnid[a, 0])] = a
    return out


def _standing_pose(d: RobotDescription, model, joint_ids: np.ndarray, where: str) -> np.ndarray:
    import mujoco

    pose = d.standing_pose
    if pose.keyframe is not None:
        key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, pose.keyframe)
        if key < 0:
            keys = _names(model, mujoco.mjtObj.mjOBJ_KEY, model.nkey)
            raise RobotError(
                f"{where}: standing_pose.keyframe {pose.keyframe!r} not in the MJCF; "
                f"keyframes: {', '.join(keys) or 'none'}"
            )
        return model.key_qpos[key, model.jnt_qposadr[joint_ids]].astype(np.float64)
    unknown = sorted(set(pose.values) - set(d.joints))
    absent = [j for j in d.joints if j not in pose.values]
    if unknown or absent:
        raise RobotError(
            f"{where}: standing_pose.values needs exactly the policy joints "
            f"(missing: {absent or 'none'}; not policy joints: {unknown or 'none'}); "
            f"joints: {', '.join(d.joints)}"
        )
    return np.array([pose.values[j] for j in d.joints], dtype=np.float64)
