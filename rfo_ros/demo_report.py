"""The closed-loop demo's report: what the bringup measured, as text/JSON (pictures: ``rfo_ros.render``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from rfo_ros.runtime.stats import LatencySummary


@dataclass(frozen=True)
class CameraSummary:
    """The depth camera in a run: frames the sim published and the policy used (their rate over sim time,
    Hz), the latency from a frame's rmw reception to the controller having it (resampling included, ms),
    frames the policy node refused, and the camera it resampled (or why it refused it)."""

    published: int
    used: int
    rate_hz: float
    latency: LatencySummary
    dropped: int
    status: str


@dataclass(frozen=True)
class DemoReport:
    """One closed-loop run (sim node + policy node). Times in s, distances in m, latencies in ms.

    ``control_latency``: ``joint_states`` received (rmw reception time) -> ``action_chunk`` published,
    measured inside the policy node on every plan; ``model_latency``: the ONNX Runtime call alone.
    In a world with an obstacle course: ``crossings`` of ``attempts`` (the run, and each restart after a
    fall) passed the finish line at ``course_finish_x`` without a fall (None: no course). Models with an
    image input: ``camera``.
    """

    robot: str
    model_path: str
    task: str
    flow_steps: int
    chunk: int
    policy_shape: str
    provider: str
    policy_inputs: list[str]
    mode: str
    sim_time: float
    wall_time: float
    distance_m: float
    forward_distance_m: float
    mean_forward_speed: float
    command_vx: float
    falls: int
    control_latency: LatencySummary
    model_latency: LatencySummary
    plans: int
    control_steps: int
    hold_steps: int
    dropped_messages: int
    complete: bool = True
    strip_path: str | None = None
    video_path: str | None = None
    notes: list[str] = field(default_factory=list)
    crossings: int | None = None
    attempts: int = 1
    course_finish_x: float | None = None
    camera: CameraSummary | None = None

    def as_dict(self) -> dict:
        return _json_safe(asdict(self))

    def text(self) -> str:
        """The human-readable report."""
        c, m = self.control_latency, self.model_latency
        factor = self.sim_time / self.wall_time if self.wall_time > 0 else float("nan")
        lines = [
            f"rfo_ros closed-loop report: {self.robot}, {self.sim_time:.2f} s of sim time "
            f"in {self.wall_time:.2f} s wall ({factor:.2f}x real time, {self.mode})"
            + ("" if self.complete else "  [STOPPED EARLY: wall-clock limit]"),
            f"  model              {self.model_path} (task {self.task}, {self.policy_shape})",
            f"  execution provider {self.provider}",
            f"  policy inputs      {', '.join(self.policy_inputs)}"
            + ("" if "odom" in self.policy_inputs else " (no odometry)"),
            f"  distance walked    {self.distance_m:.2f} m (forward {self.forward_distance_m:+.2f} m)",
            f"  mean forward speed {self.mean_forward_speed:+.3f} m/s (command {self.command_vx:.2f} m/s)",
            f"  falls              {self.falls}",
            f"  control latency    p50 {c.p50_ms:.3f} ms, p99 {c.p99_ms:.3f} ms, max {c.max_ms:.3f} ms "
            f"(joint_states received -> action_chunk published, {c.count} plans)",
            f"  model latency      p50 {m.p50_ms:.3f} ms, p99 {m.p99_ms:.3f} ms (ONNX Runtime call)",
            f"  control steps      {self.control_steps} ({self.plans} plans, {self.hold_steps} hold steps, "
            f"{self.dropped_messages} dropped messages)",
        ]
        if self.crossings is not None:
            lines.append(
                f"  obstacle course    crossed {self.crossings} of {self.attempts} attempt(s) without a fall "
                f"(finish line x = {self.course_finish_x:.2f} m)"
            )
        if self.camera is not None:
            cam, lat = self.camera, self.camera.latency
            lines += [
                f"  camera             {cam.used} of {cam.published} depth frames used "
                f"({cam.rate_hz:.1f} Hz of sim time), {cam.dropped} refused; {cam.status}",
                f"  camera latency     p50 {lat.p50_ms:.3f} ms, p99 {lat.p99_ms:.3f} ms (frame received -> "
                "controller, resampling included)",
            ]
        if self.strip_path:
            lines.append(f"  image strip        {self.strip_path}")
        if self.video_path:
            lines.append(f"  video              {self.video_path}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
