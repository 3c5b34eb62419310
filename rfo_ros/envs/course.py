"""An obstacle course in a world's MJCF: blocks across the robot's path, drawn again per env at every reset.

A world declares its course (``sim/quadruped_terrain.xml``): static bodies ``course_block_0``,
``course_block_1``, ... each with one box geom at the body's origin, and ``<custom>`` ranges that
``CourseSpec`` reads. A *layout* (N, B, 3) holds per env and block its near edge x, far edge x and height
(m); ``Course.draw`` draws layouts, ``Course.apply`` writes one into a model.

Each env steps its own MjModel copy (``rfo_ros.sim.batched.BatchedSim`` steps and differentiates every env
with its own model, as physics randomisation does): ``apply`` moves the block's body and resizes its box,
and refreshes the bounds MuJoCo prunes collisions and rays with (``geom_rbound``, ``geom_aabb``, the body's
one BVH node). Mocap bodies would move blocks per ``MjData`` instead, but they cannot resize a box, and the
finite-difference Jacobians replay an env's step into scratch ``MjData`` from its qpos, qvel, act and
ctrl only, where a mocap position would be lost. The course is static geometry: no gradient flows through
it, and heights under the robot are read from the layout (``ground_height``), not from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from rfo_ros.envs.legged import yaw_of

__all__ = ["BLOCK_PREFIX", "Course", "CourseSpec", "support_points"]

#: Bodies (and their box geoms) ``<prefix><i>``, i = 0, 1, ... in the order the robot meets them.
BLOCK_PREFIX = "course_block_"
_RANGES = ("start_x", "block_length", "block_height", "gap", "command_vx")
_SCALARS = ("finish_margin", "solved_crossing_rate")


@dataclass(frozen=True)
class CourseSpec:
    """The ``<custom>`` entries ``course_<field>`` of a world with a course (ranges are (low, high)).

    ``start_x``: near edge of the first block (the robot starts at x = 0); ``block_length``,
    ``block_height``: each block's; ``gap``: floor between consecutive blocks; ``finish_margin``: the course
    is crossed when the trunk is this far past the last block's far edge; ``command_vx``: the forward
    speed commands of the course (m/s); ``solved_crossing_rate``: the crossing rate that solves it;
    ``camera``: the robot's camera that sees it (None: none named); ``random_return``: what a uniform-random
    policy scores there (optional ``course_random_return``, measured; None: the robot file's).
    """

    start_x: tuple[float, float]
    block_length: tuple[float, float]
    block_height: tuple[float, float]
    gap: tuple[float, float]
    finish_margin: float
    command_vx: tuple[float, float]
    solved_crossing_rate: float
    camera: str | None = None
    random_return: float | None = None

    @staticmethod
    def from_model(model: mujoco.MjModel) -> CourseSpec | None:
        """The course a world declares, None when it has no ``course_start_x`` entry (no course).

        ``ValueError`` names the entry that is missing or wrong."""
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, "course_start_x") < 0:
            return None
        values = {}
        for name in (*_RANGES, *_SCALARS):
            data = _numeric(model, f"course_{name}")
            want = 2 if name in _RANGES else 1
            if data.size != want:
                raise ValueError(f"<numeric name='course_{name}'> needs {want} value(s), got {data.tolist()}")
            if name in _RANGES and data[0] > data[1]:
                raise ValueError(f"course_{name} = {data.tolist()}: low > high")
            values[name] = tuple(float(v) for v in data) if name in _RANGES else float(data[0])
        lowest = {k: v[0] if isinstance(v, tuple) else v for k, v in values.items()}
        for name in ("block_length", "block_height"):
            if lowest[name] <= 0:
                raise ValueError(f"course_{name} must be > 0, got {lowest[name]:g}")
        for name in ("gap", "finish_margin"):
            if lowest[name] < 0:
                raise ValueError(f"course_{name} must be >= 0, got {lowest[name]:g}")
        rate = values["solved_crossing_rate"]
        if not 0 < rate <= 1:
            raise ValueError(f"course_solved_crossing_rate must be in (0, 1], got {rate:g}")
        random_return = None
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, "course_random_return") >= 0:
            random_return = float(_numeric(model, "course_random_return")[0])
        return CourseSpec(**values, camera=_text(model, "course_camera"), random_return=random_return)


def _numeric(model: mujoco.MjModel, name: str) -> np.ndarray:
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, name)
    if i < 0:
        raise ValueError(f"the world's course needs <numeric name='{name}'> in its <custom> section")
    adr, size = model.numeric_adr[i], model.numeric_size[i]
    return np.asarray(model.numeric_data[adr : adr + size], dtype=np.float64)


def _text(model: mujoco.MjModel, name: str) -> str | None:
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TEXT, name)
    if i < 0:
        return None
    adr, size = model.text_adr[i], model.text_size[i]
    return bytes(model.text_data[adr : adr + size]).split(b"\0", 1)[0].decode()


class Course:
    """The obstacle course of ``model`` (``CourseSpec`` + its blocks); layouts (N, B, 3) per env."""

    def __init__(self, model: mujoco.MjModel) -> None:
        spec = CourseSpec.from_model(model)
        if spec is None:
            raise ValueError("the world declares no obstacle course (<numeric name='course_start_x'>)")
        self.spec = spec
        bodies, geoms = [], []
        while (b := mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{BLOCK_PREFIX}{len(bodies)}")) >= 0:
            name = f"{BLOCK_PREFIX}{len(bodies)}"
            if model.body_geomnum[b] != 1 or model.body_bvhnum[b] != 1 or model.body_weldid[b] != 0:
                raise ValueError(f"course body {name!r} must be a static body with exactly one geom")
            g = int(model.body_geomadr[b])
            at_origin = np.allclose(model.geom_pos[g], 0) and np.allclose(model.geom_quat[g], (1, 0, 0, 0))
            if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX or not at_origin:
                raise ValueError(f"course body {name!r}: its geom must be a box at the body's origin")
            bodies.append(b)
            geoms.append(g)
        if not bodies:
            raise ValueError(f"the world's course has no blocks (static bodies {BLOCK_PREFIX}0, 1, ...)")
        self.bodies, self.geoms = np.array(bodies), np.array(geoms)
        #: Each block's half-width across the path (m) and centre y, as the MJCF has them (never redrawn).
        self.half_width = model.geom_size[self.geoms, 1].copy()
        self.center_y = model.body_pos[self.bodies, 1].copy()
        x, length = model.body_pos[self.bodies, 0], model.geom_size[self.geoms, 0]
        #: The course as the MJCF places it (B, 3): near edge, far edge, height.
        self.nominal = np.stack([x - length, x + length, 2 * model.geom_size[self.geoms, 2]], axis=1)

    @property
    def num_blocks(self) -> int:
        return len(self.bodies)

    def draw(self, rng: np.random.Generator, k: int, height_scale: np.ndarray | None = None) -> np.ndarray:
        """``k`` random layouts (k, B, 3) from the spec's ranges: near edge, far edge, height; each
        layout's heights times its ``height_scale`` (k,) where given (a curriculum's level)."""
        s, b = self.spec, self.num_blocks
        start = rng.uniform(*s.start_x, k)
        lengths = rng.uniform(*s.block_length, (k, b))
        heights = rng.uniform(*s.block_height, (k, b))
        if height_scale is not None:
            heights = heights * np.asarray(height_scale, dtype=np.float64)[:, None]
        gaps = rng.uniform(*s.gap, (k, b))
        gaps[:, 0] = 0.0  # the first block starts at ``start``
        before = np.concatenate([np.zeros((k, 1)), np.cumsum(lengths, axis=1)[:, :-1]], axis=1)
        near = start[:, None] + np.cumsum(gaps, axis=1) + before
        return np.stack([near, near + lengths, heights], axis=2)

    def apply(self, model: mujoco.MjModel, layout: np.ndarray) -> None:
        """Place and size the blocks of ``model`` as ``layout`` (B, 3) says."""
        layout = np.asarray(layout, dtype=np.float64)
        if layout.shape != (self.num_blocks, 3):
            raise ValueError(f"a course layout is ({self.num_blocks}, 3), got {layout.shape}")
        near, far, height = layout.T
        size = np.stack([(far - near) / 2, self.half_width, height / 2], axis=1)
        model.body_pos[self.bodies] = np.stack([(near + far) / 2, self.center_y, height / 2], axis=1)
        model.geom_size[self.geoms] = size
        model.geom_rbound[self.geoms] = np.linalg.norm(size, axis=1)
        model.geom_aabb[self.geoms] = np.concatenate([np.zeros_like(size), size], axis=1)
        model.bvh_aabb[model.body_bvhadr[self.bodies]] = model.geom_aabb[self.geoms]

    def ground_height(self, layout: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height (m) of the ground at points (x, y), each (N, P), of the envs' layouts (N, B, 3): the
        top of the block there, else the floor (0)."""
        near, far, height = (layout[:, None, :, i] for i in range(3))  # (N, 1, B)
        across = np.abs(y[..., None] - self.center_y) <= self.half_width
        on = (x[..., None] >= near) & (x[..., None] < far) & across
        return np.where(on, height, 0.0).max(axis=-1)

    def finish_x(self, layout: np.ndarray) -> np.ndarray:
        """(N,) the trunk x past which each env's course counts as crossed."""
        return layout[:, -1, 1] + self.spec.finish_margin

    def support_height(self, layout: np.ndarray, qpos: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(N,) the mean ground height under ``points`` (P, 2), trunk-frame xy offsets (``support_points``:
        the feet of the standing robot), placed by each trunk's position and heading in ``qpos`` (N, nq)."""
        yaw = yaw_of(qpos[:, 3:7])
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        x = qpos[:, 0:1] + c * points[:, 0] - s * points[:, 1]
        y = qpos[:, 1:2] + s * points[:, 0] + c * points[:, 1]
        return self.ground_height(layout, x, y).mean(axis=1)


def support_points(robot) -> np.ndarray:
    """(F, 2) xy of each foot of ``robot`` (a ``rfo_ros.robot.Robot``) in the trunk frame, standing: where
    the ground that carries the robot is, for heights above uneven ground."""
    m = robot.model
    d = mujoco.MjData(m)
    d.qpos[:] = robot.standing_qpos()
    mujoco.mj_kinematics(m, d)
    trunk = m.body(robot.description.trunk).id
    points = []
    for foot in robot.description.feet:
        is_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, foot) >= 0
        world = d.geom(foot).xpos if is_geom else d.body(foot).xpos
        points.append(d.xmat[trunk].reshape(3, 3).T @ (world - d.xpos[trunk]))
    return np.array(points)[:, :2]
