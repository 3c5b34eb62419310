"""The closed-loop demo's report: what the bringup measured, as text/JSON, and a PNG strip of the rollout."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rfo_ros.nodes.stats import LatencySummary


@dataclass(frozen=True)
class DemoReport:
    """One closed-loop run (sim node + policy node). Times in s, distances in m, latencies in ms.

    ``control_latency``: ``joint_states`` received (rmw reception time) -> ``action_chunk`` published,
    measured inside the policy node on every plan; ``model_latency``: the ONNX Runtime call alone.
    """

    robot: str
    model_path: str
    task: str
    flow_steps: int
    chunk: int
    provider: str
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
    notes: list[str] = field(default_factory=list)

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
            f"  model              {self.model_path} (task {self.task}, K={self.flow_steps}, C={self.chunk})",
            f"  execution provider {self.provider}",
            f"  distance walked    {self.distance_m:.2f} m (forward {self.forward_distance_m:+.2f} m)",
            f"  mean forward speed {self.mean_forward_speed:+.3f} m/s (command {self.command_vx:.2f} m/s)",
            f"  falls              {self.falls}",
            f"  control latency    p50 {c.p50_ms:.3f} ms, p99 {c.p99_ms:.3f} ms, max {c.max_ms:.3f} ms "
            f"(joint_states received -> action_chunk published, {c.count} plans)",
            f"  model latency      p50 {m.p50_ms:.3f} ms, p99 {m.p99_ms:.3f} ms (ONNX Runtime call)",
            f"  control steps      {self.control_steps} ({self.plans} plans, {self.hold_steps} hold steps, "
            f"{self.dropped_messages} dropped messages)",
        ]
        if self.strip_path:
            lines.append(f"  image strip        {self.strip_path}")
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


def save_image_strip(
    model,
    trajectory: list[tuple[float, np.ndarray]],
    path: str | os.PathLike,
    frames: int = 6,
    size=(240, 320),
) -> Path:
    """A PNG of ``frames`` snapshots of the rollout side by side, rendered offscreen (MuJoCo + EGL).

    ``trajectory`` holds (sim time, qpos) samples (``SimNode.trajectory``); the camera follows the trunk.
    Falls back to a matplotlib plot of the trunk's path when offscreen rendering is unavailable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not trajectory:
        raise ValueError("no trajectory samples to draw (record_every_s = 0?)")
    picks = np.unique(np.linspace(0, len(trajectory) - 1, frames).round().astype(int))
    try:
        images = _render(model, [trajectory[i] for i in picks], size)
    except Exception as exc:  # no EGL/OSMesa: draw the path instead
        return _plot_path(trajectory, path, reason=str(exc))
    import matplotlib.image

    matplotlib.image.imsave(path, np.concatenate(images, axis=1))
    return path


def _render(model, samples, size) -> list[np.ndarray]:
    import mujoco

    data = mujoco.MjData(model)
    height, width = size
    renderer = mujoco.Renderer(model, height, width)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1  # the first body after the world: the trunk of a free-base robot
    camera.distance, camera.elevation, camera.azimuth = 1.4, -20.0, 120.0
    images = []
    try:
        for _time, qpos in samples:
            data.qpos[:] = qpos
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            frame = renderer.render().copy()
            frame[:, -2:, :] = 255  # a white separator between frames
            images.append(frame)
    finally:
        renderer.close()
    return images


def _plot_path(trajectory, path: Path, reason: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s[0] for s in trajectory])
    qpos = np.stack([s[1] for s in trajectory])
    fig, (ax_xy, ax_z) = plt.subplots(1, 2, figsize=(9, 3))
    ax_xy.plot(qpos[:, 0], qpos[:, 1])
    ax_xy.set(xlabel="x (m)", ylabel="y (m)", title="trunk path", aspect="equal")
    ax_z.plot(t, qpos[:, 2])
    ax_z.set(
        xlabel="sim time (s)", ylabel="trunk height (m)", title=f"(no offscreen rendering: {reason:.40})"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
