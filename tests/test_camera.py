"""Real cameras for depth policies: resampling any resolution and intrinsics to the model's camera.

Reference: the simulator's own camera at the model's resolution (``DepthCamera``, the training task's
ray-caster). The real camera renders the same scene (the quadruped's world with boxes ahead) at its own
size and K, with the sim node's renderers (``sim_camera``); ``DepthResampler`` turns that into the model's
image. Tolerance: 0.0025 of the depth range (1 cm at 4 m) per pixel, except where a model ray passes between
real pixels on both sides of a depth edge (the real image cannot say on which side of the edge the ray lies:
at most 2 of 256 pixels). Measured: at most 1e-4 of the range (0.4 mm, interpolating z across a floor seen
at a grazing angle) elsewhere, median ~2e-7; one pixel of the 640x480 case reads the far side of a box edge.
"""

from __future__ import annotations

import copy
import os

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine
os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen GL, where this module imports MuJoCo first

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from go1 import JOINT_NAMES  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.envs.depth import DepthCamera, pinhole_ray_directions  # noqa: E402
from rfo_ros.nodes.policy_node import PolicyNode  # noqa: E402
from rfo_ros.nodes.ros_conversions import (  # noqa: E402
    MalformedMessageError,
    depth_image_data,
    depth_pixels,
    fill_camera_info,
    image_message,
    image_to_array,
    intrinsics_from_camera_info,
    stamp_from_seconds,
)
from rfo_ros.nodes.sim_camera import GLDepth, RayCastDepth  # noqa: E402
from rfo_ros.nodes.testing import NodeHarness, state_messages  # noqa: E402
from rfo_ros.runtime import load_metadata  # noqa: E402
from rfo_ros.runtime.camera import DepthResampler, FieldOfViewError, Intrinsics, ModelCamera  # noqa: E402
from rfo_ros.sim.worlds import world_path  # noqa: E402

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0
RANGE = 4.0  # the depth task's range (m)
TOLERANCE = 0.0025  # of the range: 1 cm at 4 m


def _gl_works() -> bool:
    from mujoco.rendering.classic import gl_context

    return getattr(gl_context, "_MUJOCO_GL", "") in ("egl", "osmesa") or bool(os.environ.get("DISPLAY"))


@pytest.fixture(scope="module")
def scene():
    """The quadruped's world with three boxes ahead of the robot (steps the front camera sees), standing."""
    spec = mujoco.MjSpec.from_file(str(world_path("quadruped")))
    for x, y, half_height in [(1.0, 0.2, 0.1), (1.6, -0.3, 0.25), (2.2, 0.0, 0.4)]:
        box = spec.worldbody.add_geom()
        box.type, box.size, box.pos, box.group = (
            mujoco.mjtGeom.mjGEOM_BOX,
            [0.2, 0.3, half_height],
            [x, y, half_height],
            0,
        )
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("stand").id)
    mujoco.mj_forward(model, data)
    return model, data


def reference_image(model, data, fovy_deg: float) -> np.ndarray:
    """What the depth task observes (16x16, normalised) through the front camera at ``fovy_deg``."""
    model = copy.copy(model)
    model.cam_fovy[model.camera("front").id] = fovy_deg
    return DepthCamera(model, "front", 16, 16, RANGE).render_one(data)


def across_an_edge(resample: DepthResampler, depth: np.ndarray) -> np.ndarray:
    """Model pixels (16, 16) whose ray passes between real pixels of depths more than 10 % apart."""
    z = np.where(np.isfinite(depth), depth, 100.0)[resample.rows, resample.cols]
    return (z.max(axis=0) > 1.1 * z.min(axis=0)).reshape(16, 16)


# --- the maths on worked numbers ---------------------------------------------------------------------------
def test_model_rays_are_the_training_cameras_rays():
    for width, height, fovy in [(16, 16, 70.0), (20, 12, 45.0)]:
        np.testing.assert_allclose(
            Intrinsics.from_fovy(width, height, fovy).ray_directions(),
            pinhole_ray_directions(width, height, fovy),
            atol=1e-12,
        )


def test_z_depth_becomes_the_distance_along_each_model_ray():
    """A wall facing the camera at z = 2 m: every real pixel reads 2; the model's pixel (i, j) reads the
    distance 2 * sqrt(1 + x^2 + y^2) along its ray (``depth="ray"``), or 2 for a z-depth model."""
    camera = Intrinsics(848, 480, 300.0, 301.0, 430.3, 236.8)  # off-centre, non-square
    model = ModelCamera(16, 16, 70.0, RANGE)
    x, y = model.intrinsics.normalised_coordinates()
    wall = np.full((480, 848), 2.0, np.float32)
    np.testing.assert_allclose(
        DepthResampler(model, camera)(wall)[0], 2 * np.sqrt(1 + x**2 + y**2) / RANGE, rtol=1e-6
    )
    z_model = ModelCamera(16, 16, 70.0, RANGE, depth="z")
    np.testing.assert_allclose(DepthResampler(z_model, camera)(wall), 0.5, rtol=1e-6)


def test_no_return_reads_as_the_maximum_range_and_too_close_as_zero():
    camera, model = Intrinsics.from_fovy(32, 32, 70.0), ModelCamera(16, 16, 70.0, RANGE, depth="z")
    resample = DepthResampler(model, camera)  # each model ray sits amid 4 real pixels, equal weights
    for missing in (np.nan, 0.0, np.inf):
        np.testing.assert_array_equal(resample(np.full((32, 32), missing, np.float32)), 1.0)
    np.testing.assert_array_equal(resample(np.full((32, 32), -np.inf, np.float32)), 0.0)
    np.testing.assert_array_equal(resample(np.zeros((32, 32), np.uint16), 0.001), 1.0)
    holes = np.full((32, 32), 2.0, np.float32)
    holes[::2, ::2] = np.nan  # one neighbour of each model ray has no return: the other three carry it
    np.testing.assert_allclose(resample(holes), 0.5)
    holes[::2, :] = np.nan  # half of the weight: still a return
    np.testing.assert_allclose(resample(holes), 0.5)
    holes[1::2, ::2] = np.nan  # three of four neighbours without a return: none
    np.testing.assert_array_equal(resample(holes), 1.0)


def test_a_depth_edge_is_not_blended_into_a_surface_that_is_not_there():
    camera, model = Intrinsics.from_fovy(32, 32, 70.0), ModelCamera(16, 16, 70.0, RANGE, depth="z")
    step = np.full((32, 32), 3.0, np.float32)
    step[:, 16:] = 1.0  # the edge between real columns 15 and 16; model column 7 sees columns 14-15
    out = DepthResampler(model, camera)(step)[0]
    np.testing.assert_allclose(out[:, :8], 0.75)
    np.testing.assert_allclose(out[:, 8:], 0.25)
    ramp = np.tile(np.linspace(2.0, 2.31, 32, dtype=np.float32), (32, 1))  # smooth: interpolated
    expected = np.linspace(2.0, 2.31, 32)[1::2] - 0.005  # model ray k: between real columns 2k and 2k+1
    np.testing.assert_allclose(DepthResampler(model, camera)(ramp)[0, 0], expected / RANGE, atol=1e-6)


# --- against the simulator's own camera --------------------------------------------------------------------
CASES = {
    # A RealSense D4xx-like 320x240 at 58 deg vertical, for a model whose camera sees 50 deg.
    "320x240 fovy 58": (50.0, Intrinsics.from_fovy(320, 240, 58.0), GLDepth),
    "640x480 fovy 70": (70.0, Intrinsics.from_fovy(640, 480, 70.0), GLDepth),
    "848x480 off-centre cx": (70.0, Intrinsics(848, 480, 300.0, 302.0, 400.0, 250.0), RayCastDepth),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resampling_matches_the_simulators_camera(scene, case):
    model_fovy, camera, renderer = CASES[case]
    if renderer is GLDepth and not _gl_works():
        pytest.skip("run with MUJOCO_GL=egl for offscreen rendering")
    model, data = scene
    sensor = renderer(model, "front", camera, RANGE)
    try:
        depth = sensor.render(data)
    finally:
        sensor.close()
    resample = DepthResampler(ModelCamera(16, 16, model_fovy, RANGE), camera)
    got, expected = resample(depth)[0], reference_image(model, data, model_fovy)
    edges = across_an_edge(resample, depth)
    assert (expected < 1).mean() > 0.5 and edges.sum() < 20  # the scene in view; few rays straddle an edge
    error = np.abs(got - expected)
    off = error > TOLERANCE
    assert off.sum() <= 2 and edges[off].all(), (case, error.max(), np.argwhere(off))
    assert np.median(error) < 1e-4


def test_16uc1_and_32fc1_of_the_same_scene_agree_within_a_millimetre(scene):
    model, data = scene
    camera = Intrinsics.from_fovy(320, 240, 70.0)
    depth = RayCastDepth(model, "front", camera, RANGE).render(data)
    stamp = stamp_from_seconds(0.0)
    decoded = {}
    for encoding in ("32FC1", "16UC1"):
        msg = image_message(stamp, "front", encoding, depth_image_data(depth, encoding))
        decoded[encoding] = depth_pixels(msg)
    metres = {enc: pixels.astype(np.float64) * unit for enc, (pixels, unit) in decoded.items()}
    returns = np.isfinite(depth)
    assert returns.mean() > 0.5 and (metres["16UC1"][~returns] == 0).all()
    assert np.abs(metres["16UC1"] - metres["32FC1"])[returns].max() <= 0.0005 + 1e-6
    resample = DepthResampler(ModelCamera(16, 16, 70.0, RANGE), camera)
    images = {enc: resample(pixels, unit) for enc, (pixels, unit) in decoded.items()}
    ray_length = np.sqrt(
        1 + sum(c**2 for c in ModelCamera(16, 16, 70.0, RANGE).intrinsics.normalised_coordinates())
    )
    assert (np.abs(images["16UC1"] - images["32FC1"]) * RANGE <= 0.0005 * ray_length.max() + 1e-6).all()


def test_sim_node_camera_info_is_the_renderers_k(scene):
    camera = Intrinsics.from_fovy(320, 240, 70.0)
    info = CameraInfo()
    fill_camera_info(info, stamp_from_seconds(1.5), "front", camera)
    assert intrinsics_from_camera_info(info) == camera
    assert (info.distortion_model, list(info.d)) == ("plumb_bob", [0.0] * 5)
    np.testing.assert_allclose(camera.field_of_view_deg()[1], 70.0)


# --- refusals, with the numbers and the accepted values ----------------------------------------------------
def test_a_camera_that_cannot_cover_the_models_field_of_view_is_refused_with_the_numbers():
    with pytest.raises(FieldOfViewError) as refused:
        DepthResampler(ModelCamera(16, 16, 70.0, RANGE), Intrinsics.from_fovy(320, 240, 58.0))
    message = str(refused.value)
    assert "field of view 72.9 x 58.0 deg" in message and "the model's 70.0 x 70.0 deg" in message
    assert "top 29.0 deg < 35.0 deg" in message and "bottom 29.0 deg < 35.0 deg" in message
    off_centre = Intrinsics(640, 480, 300.0, 300.0, 500.0, 239.5)  # 129 deg wide, but 20 deg right of axis
    with pytest.raises(FieldOfViewError, match=r"right 2\d\.\d deg < 35\.0 deg"):
        DepthResampler(ModelCamera(16, 16, 70.0, RANGE), off_centre)


def test_wrong_encoding_truncated_image_and_distorted_camera_are_refused():
    stamp = stamp_from_seconds(0.0)
    with pytest.raises(
        MalformedMessageError, match=r"'rgb8' is not accepted: use 16UC1 \(millimetres\), 32FC1"
    ):
        depth_pixels(image_message(stamp, "f", "rgb8", np.zeros((4, 4, 3), np.uint8)))
    short = image_message(stamp, "f", "32FC1", np.zeros((4, 4), np.float32))
    short.data = bytes(63)
    with pytest.raises(
        MalformedMessageError, match="needs step >= 16 and step \\* height bytes of data; got step 16"
    ):
        depth_pixels(short)
    narrow = image_message(stamp, "f", "16UC1", np.zeros((4, 4), np.uint16))
    narrow.step = 6
    with pytest.raises(MalformedMessageError, match="step >= 8"):
        depth_pixels(narrow)
    info = CameraInfo()
    fill_camera_info(info, stamp, "f", Intrinsics.from_fovy(64, 48, 70.0))
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(MalformedMessageError, match="D=.0.1, 0.0, 0.0, 0.0, 0.0. is not zero"):
        intrinsics_from_camera_info(info)


def test_big_endian_and_padded_rows_read_the_same():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    msg = image_message(stamp_from_seconds(0.0), "f", "32FC1", depth.astype(">f4"))
    assert msg.is_bigendian == 1
    np.testing.assert_array_equal(depth_pixels(msg)[0], depth)
    padded = np.zeros((3, 6), np.float32)
    padded[:, :4] = depth
    msg = image_message(stamp_from_seconds(0.0), "f", "32FC1", padded)
    msg.width = 4
    np.testing.assert_array_equal(depth_pixels(msg)[0], depth)


def test_rgb_images_of_the_models_size_read_as_before():
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    stamp = stamp_from_seconds(0.0)
    for encoding, pixels in (("rgb8", rgb), ("bgr8", rgb[..., ::-1])):
        got = image_to_array(image_message(stamp, "f", encoding, pixels), (3, 2, 3), RANGE)
        np.testing.assert_allclose(got, rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    with pytest.raises(
        MalformedMessageError, match="'mono8' does not give the model's 3 channel.s.: use rgb8, bgr8"
    ):
        image_to_array(image_message(stamp, "f", "mono8", rgb[..., 0]), (3, 2, 3), RANGE)


# --- through the policy node -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    return export_untrained_policy(
        tmp_path_factory.mktemp("depth") / "depth.onnx", task="quadruped_depth", flow_steps=1, chunk=1
    )


@pytest.fixture
def harness():
    with NodeHarness() as h:
        yield h


def depth_node(h: NodeHarness, model) -> PolicyNode:
    params = {
        "model_path": str(model),
        "provider": "cpu",
        "tick_source": "state",
        "publish_diagnostics_hz": 0.0,
    }
    return h.add(
        PolicyNode(**h.node_kwargs(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    )


def feed(
    h: NodeHarness, node: PolicyNode, camera: Intrinsics | None, image: Image, until, rounds: int = 50
) -> bool:
    """CameraInfo (unless ``camera`` is None), the image, then a fresh state (the trigger), again until
    ``until()`` or ``rounds``."""
    topics = [(Image, "camera/depth"), (Imu, "imu"), (Odometry, "odom"), (JointState, "joint_states")]
    h.connect(*([(CameraInfo, "camera/camera_info")] if camera else []), *topics)
    qpos, qvel = np.zeros(19), np.zeros(18)
    qpos[2], qpos[3] = 0.3, 1.0
    for k in range(rounds):
        stamp = stamp_from_seconds(0.01 * (k + 1))
        if camera is not None:
            info = CameraInfo()
            fill_camera_info(info, stamp, "front", camera)
            h.publish("camera/camera_info", info)
        image.header.stamp = stamp
        h.publish("camera/depth", image)
        state = state_messages(qpos, qvel, JOINT_NAMES, 0.01 * (k + 1))
        for topic, msg in zip(("imu", "odom", "joint_states"), state, strict=True):
            h.publish(topic, msg)
        if h.spin_until(until, 0.2):
            return True
    return False


def test_the_node_resamples_a_16uc1_camera_and_plans_on_it(scene, harness, depth_model):
    model, data = scene
    camera = Intrinsics(848, 480, 300.0, 302.0, 400.0, 250.0)
    depth = RayCastDepth(model, "front", camera, RANGE).render(data)
    pixels = depth_image_data(depth, "16UC1")
    node = depth_node(harness, depth_model)
    assert feed(harness, node, camera, image_message(stamp_from_seconds(0.0), "front", "16UC1", pixels),
                lambda: node.ports.stats.plans >= 1)  # fmt: skip
    meta_camera = load_metadata(depth_model).image.camera
    assert meta_camera == ModelCamera(16, 16, 70.0, RANGE, "ray")
    np.testing.assert_array_equal(
        node.ports.controller.inputs.image, DepthResampler(meta_camera, camera)(pixels, 0.001)
    )
    stats = node.ports.stats
    assert stats.images >= 1 and stats.image_latency.count == stats.images and stats.dropped_total == 0
    assert stats.camera.startswith("848x480 fx 300.0 fy 302.0 cx 400.0 cy 250.0")


def _refused(harness, node, camera, image, reason: str) -> dict[str, str]:
    """Feed a refused camera/frame: it is counted, and nothing reaches the policy (no plan, no image)."""
    assert feed(harness, node, camera, image, lambda: node.ports.stats.dropped.get(f"image/{reason}", 0) >= 3)
    stats = node.ports.stats
    assert stats.plans == 0 and stats.images == 0 and node.ports.controller.inputs.image is None
    assert set(stats.dropped) == {f"image/{reason}"}
    status = node.ports.diagnostics_message().status[0]
    return {kv.key: kv.value for kv in status.values}


def test_a_too_narrow_camera_is_refused_at_its_camera_info_and_nothing_runs(harness, depth_model):
    camera = Intrinsics.from_fovy(320, 240, 58.0)
    node = depth_node(harness, depth_model)
    image = image_message(stamp_from_seconds(0.0), "front", "32FC1", np.full((240, 320), 1.5, np.float32))
    values = _refused(harness, node, camera, image, "camera_refused")
    assert values["camera"].startswith("camera refused: the camera's field of view 72.9 x 58.0 deg")
    assert "cannot cover the model's 70.0 x 70.0 deg" in values["camera"]
    assert values["dropped/image/camera_refused"] == values["dropped_total"]


def test_a_wrong_encoding_is_refused_naming_the_accepted_ones(harness, depth_model):
    camera = Intrinsics.from_fovy(64, 48, 70.0)
    node = depth_node(harness, depth_model)
    image = image_message(stamp_from_seconds(0.0), "front", "mono16", np.full((48, 64), 1500, np.uint16))
    _refused(harness, node, camera, image, "encoding")
    with pytest.raises(
        MalformedMessageError, match=r"'mono16' is not accepted: use 16UC1 \(millimetres\), 32FC1 \(metres\)"
    ):
        node.ports.camera.image(image)


def test_a_truncated_image_is_refused(harness, depth_model):
    camera = Intrinsics.from_fovy(64, 48, 70.0)
    node = depth_node(harness, depth_model)
    image = image_message(stamp_from_seconds(0.0), "front", "32FC1", np.full((48, 64), 1.5, np.float32))
    image.data = bytes(image.step * 47)  # one row short
    _refused(harness, node, camera, image, "truncated")
    with pytest.raises(MalformedMessageError, match="got step 256 and 12032 bytes"):
        node.ports.camera.image(image)


def test_a_depth_model_exported_before_cameras_were_recorded_still_runs(harness, depth_model, tmp_path):
    """No ``camera`` in its image metadata: it loads, subscribes to no CameraInfo and takes depth images of
    its own size (either encoding), read with ``depth_range_m`` as before."""
    import json

    import onnx

    proto = onnx.load(str(depth_model))
    props = {p.key: p.value for p in proto.metadata_props}
    image = json.loads(props["image"])
    del image["camera"]
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**props, "image": json.dumps(image)})
    old = tmp_path / "old_depth.onnx"
    onnx.save(proto, str(old))
    assert load_metadata(old).image.camera is None
    node = depth_node(harness, old)
    assert node.ports.camera.camera_info_topic is None
    assert harness.probe.count_subscribers(f"{harness.namespace}/camera/camera_info") == 0
    depth = np.full((16, 16), 2000, np.uint16)
    depth[0] = 0  # no return
    msg = image_message(stamp_from_seconds(0.0), "front", "16UC1", depth)
    assert feed(harness, node, None, msg, lambda: node.ports.stats.plans >= 1)
    expected = np.full((1, 16, 16), 0.5, np.float32)
    expected[0, 0] = 1.0
    np.testing.assert_array_equal(node.ports.controller.inputs.image, expected)
    assert node.ports.stats.camera.startswith("images of the model's size 16x16")
