"""What the world may do to a robot: randomised physics, latency, sensor noise and pushes (the config).

``Randomization`` is ``env.randomization`` of a training config and each named perturbation set of
``python -m rfo_ros.evaluate --perturb NAME`` / ``bench robust``; ``rfo_ros.envs.perturb`` applies it
per env. Every entry is off (None / empty) by default, so an empty section is today's nominal world.
Ranges are [low, high], drawn uniformly per env at every reset; a set that fixes one value uses
[v, v]. This module imports only pydantic (the training CLI validates configs before loading torch).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

Range = tuple[float, float]

#: The physics constants drawn uniformly from a [low, high] range, in the order they are drawn.
PHYSICS_RANGES = ("friction", "added_mass_kg", "link_mass_scale", "motor_strength", "kp_scale", "kd_scale",
                  "joint_damping_scale", "armature_scale", "frictionloss")  # fmt: skip


class Randomization(BaseModel):
    """Per-env world perturbations (legged tasks; see ``rfo_ros.envs.perturb``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    friction: Range | None = Field(None, description="sliding friction coefficient of every geom")
    added_mass_kg: Range | None = Field(None, description="mass added to the trunk (kg)")
    com_offset_m: float | None = Field(None, ge=0, description="± trunk centre-of-mass shift per axis (m)")
    link_mass_scale: Range | None = Field(None, description="factor on every other robot body's mass")
    motor_strength: Range | None = Field(None, description="factor on actuator torque and its limit")
    kp_scale: Range | None = Field(None, description="factor on the position gain kp")
    kd_scale: Range | None = Field(None, description="factor on the damping gain kd")
    joint_damping_scale: Range | None = Field(None, description="factor on joint damping")
    armature_scale: Range | None = Field(None, description="factor on joint armature")
    frictionloss: Range | None = Field(None, description="joint friction loss (N·m)")
    latency_steps: tuple[int, int] | None = Field(None, description="actuation delay (control steps)")
    obs_noise: dict[str, float] = Field(
        default_factory=dict, description="uniform ± noise per observation field, in its physical units"
    )
    rough_ground_m: float | None = Field(
        None, gt=0, description="heightfield of random bumps and slopes up to this high (m), redrawn per env"
    )
    push_interval_s: float | None = Field(None, gt=0, description="a base velocity impulse this often")
    push_velocity: float = Field(0.5, ge=0, description="largest impulse per horizontal axis (m/s)")
    push_ramp_s: float | None = Field(
        None,
        gt=0,
        description="a curriculum: the largest impulse grows linearly from 0 to push_velocity over this "
        "much simulated time per env (the gait forms before the pushes are at full strength)",
    )

    @model_validator(mode="after")
    def _ranges(self) -> Randomization:
        positive = ("friction", "link_mass_scale", "motor_strength", "kp_scale", "kd_scale")
        non_negative = ("joint_damping_scale", "armature_scale", "frictionloss", "latency_steps")
        for name in (*positive, *non_negative, "added_mass_kg"):
            value = getattr(self, name)
            if value is None:
                continue
            low, high = value
            if low > high:
                raise ValueError(f"{name} = [{low}, {high}]: low > high")
            if name in positive and low <= 0:
                raise ValueError(f"{name} = [{low}, {high}]: must be > 0")
            if name in non_negative and low < 0:
                raise ValueError(f"{name} = [{low}, {high}]: must be >= 0")
        if self.push_ramp_s is not None and self.push_interval_s is None:
            raise ValueError("push_ramp_s needs push_interval_s (the ramp grows pushes that are off)")
        negative = {k: v for k, v in self.obs_noise.items() if v < 0}
        if negative:
            raise ValueError(f"obs_noise {negative}: noise amplitudes must be >= 0")
        return self

    @property
    def physics(self) -> bool:
        """True when any model constant is randomised (each env then gets its own MjModel copy)."""
        names = (*PHYSICS_RANGES, "com_offset_m", "rough_ground_m")
        return any(getattr(self, n) is not None for n in names)

    @property
    def active(self) -> bool:
        timing = self.latency_steps is not None or self.push_interval_s is not None
        return self.physics or timing or bool(self.obs_noise)


#: legged_gym's sensor noise (its noise scales, in physical units).
LEGGED_SENSOR_NOISE = {
    "base_lin_vel": 0.1,
    "base_ang_vel": 0.2,
    "projected_gravity": 0.05,
    "joint_pos": 0.01,
    "joint_vel": 1.5,
}

#: Named perturbation sets of the robustness evaluation, one perturbation each at a fixed value.
PERTURBATION_SETS: dict[str, Randomization] = {
    "nominal": Randomization(),
    "friction_low": Randomization(friction=(0.4, 0.4)),
    "friction_high": Randomization(friction=(1.25, 1.25)),
    "payload": Randomization(added_mass_kg=(3.0, 3.0)),
    "weak_motors": Randomization(motor_strength=(0.8, 0.8)),
    "latency": Randomization(latency_steps=(2, 2)),
    "sensor_noise": Randomization(obs_noise=LEGGED_SENSOR_NOISE),
    "pushes": Randomization(push_interval_s=2.0, push_velocity=0.8),
    "rough_ground": Randomization(rough_ground_m=0.05),
}
