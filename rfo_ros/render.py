"""Offscreen pictures of a rollout: the demo's image strip and video (MuJoCo + EGL, imageio-ffmpeg).

The world is rendered as *scenery*: the same MJCF with a checker floor, a sky and a brighter headlight
added through ``mujoco.MjSpec`` (textures and materials only, so joint layout and physics are unchanged),
seen by a camera that tracks the trunk. Where offscreen rendering is unavailable the strip falls back to a
matplotlib plot of the trunk's path (and the video is skipped, saying why).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Samples = Sequence[tuple[float, np.ndarray]]  # (sim time, qpos), as SimNode.trajectory records them


def scenery_model(world: str | os.PathLike, course_layout: np.ndarray | None = None):
    """The world ``world`` (a name in sim/ or an MJCF path) with a checker floor, a sky and more light.

    The floor is the geom named ``floor`` (every ground plane in sim/ is); worlds without one get the sky.
    ``course_layout`` (B, 3): where a world with an obstacle course had its blocks (``rfo_ros.envs.course``;
    default: where its MJCF places them).
    """
    import mujoco

    from rfo_ros.sim.worlds import world_path

    spec = mujoco.MjSpec.from_file(str(world_path(world)))
    spec.add_texture(
        name="rfo_checker",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.35, 0.45, 0.55],
        rgb2=[0.2, 0.27, 0.34],
        mark=mujoco.mjtMark.mjMARK_EDGE,
        markrgb=[0.85, 0.85, 0.85],
        width=300,
        height=300,
    )
    spec.add_texture(
        name="rfo_sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.45, 0.62, 0.8],
        rgb2=[0.05, 0.08, 0.12],
        width=512,
        height=3072,
    )
    floor = spec.add_material(name="rfo_floor", texrepeat=[4, 4], texuniform=True, reflectance=0.15)
    floor.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "rfo_checker"
    for geom in spec.geoms:
        if geom.name == "floor":
            geom.material = "rfo_floor"
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.6, 0.6, 0.6]
    model = spec.compile()
    if course_layout is not None:
        from rfo_ros.envs.course import Course

        Course(model).apply(model, course_layout)
    return model


def render_frames(model, samples: Samples, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of ``samples``, from a camera tracking the trunk (the first body)."""
    import mujoco

    data = mujoco.MjData(model)
    height, width = size
    renderer = mujoco.Renderer(model, height, width)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1  # the first body after the world: the trunk of a free-base robot
    camera.distance, camera.elevation, camera.azimuth = 1.6, -18.0, 125.0
    frames = []
    try:
        for _time, qpos in samples:
            data.qpos[:] = qpos
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            frames.append(renderer.render().copy())
    finally:
        renderer.close()
    return frames


def save_image_strip(
    world: str | os.PathLike,
    trajectory: Samples,
    path: str | os.PathLike,
    frames: int = 6,
    size=(240, 320),
    course_layout: np.ndarray | None = None,
) -> Path:
    """A PNG of ``frames`` snapshots of the rollout side by side (white separators between them);
    ``course_layout``: the run's obstacle course (``scenery_model``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not trajectory:
        raise ValueError("no trajectory samples to draw (record_every_s = 0?)")
    picks = np.unique(np.linspace(0, len(trajectory) - 1, frames).round().astype(int))
    try:
        images = render_frames(scenery_model(world, course_layout), [trajectory[i] for i in picks], size)
    except Exception as exc:  # no EGL/OSMesa: draw the path instead
        return _plot_path(trajectory, path, reason=str(exc))
    for image in images:
        image[:, -2:, :] = 255
    import matplotlib.image

    matplotlib.image.imsave(path, np.concatenate(images, axis=1))
    return path


def save_video(
    world: str | os.PathLike,
    trajectory: Samples,
    path: str | os.PathLike,
    size=(270, 480),
    course_layout: np.ndarray | None = None,
) -> Path:
    """An H.264 MP4 of every trajectory sample, played at the sampling rate (real time);
    ``course_layout``: the run's obstacle course (``scenery_model``)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(trajectory) < 2:
        raise ValueError("a video needs at least two trajectory samples")
    fps = (len(trajectory) - 1) / max(trajectory[-1][0] - trajectory[0][0], 1e-9)
    frames = render_frames(scenery_model(world, course_layout), trajectory, size)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def _plot_path(trajectory: Samples, path: Path, reason: str) -> Path:
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
