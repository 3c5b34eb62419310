"""The node benchmarks over real rclpy topics, shrunk to seconds: ``bench soak`` fills in its per-minute
rows and goals; ``bench latency`` measures the bare echo and the policy node under either executor, and
the node with a depth camera beside the states."""

from __future__ import annotations

import argparse

import pytest

from rfo_ros.bench.latency import (
    CAMERA_TASK,
    added_latency,
    export_untrained_policy,
    model_latency,
    node_latency,
    parse_resolution,
    round_trips,
)
from rfo_ros.bench.soak import report, soak
from rfo_ros.runtime import load_metadata

pytestmark = pytest.mark.timeout(180)


def test_soak_reports_memory_latency_and_plans_per_minute(tmp_path):
    model = export_untrained_policy(tmp_path / "untrained.onnx", flow_steps=1, chunk=4)
    result = soak(model, minutes=0.1, state_hz=200.0, jitter=0.3, provider="cpu")  # one 6 s "minute"
    (row,) = result["minutes"]
    # Lower bounds with room for a loaded 2-core machine: at least half the node's 100 Hz ticks, and a
    # plan for at least half of every C = 4 ticks (holds and late plans take some away, never most).
    assert row["ticks"] >= 0.5 * 6.0 / load_metadata(model).dt
    assert row["plans_expected"] == row["ticks"] / 4  # the report's yardstick: a plan every C = 4 ticks
    assert 0.5 * row["plans_expected"] <= row["plans_received"] <= row["plans_expected"] + 2
    assert 0 < row["p50_ms"] <= row["p99_ms"] and row["rss_mb"] > 10
    assert set(result["goals"]) and result["rss_start_mb"] > 10
    text = report(result)
    assert "| 1 |" in text and "p99 drift" in text


@pytest.mark.parametrize("executor", ["single", "events"])
def test_the_bare_echo_answers_under_either_executor(tmp_path, executor):
    model = export_untrained_policy(tmp_path / "untrained.onnx", flow_steps=1, chunk=1)
    settings = argparse.Namespace(n=30, warmup=5, rate_hz=200.0)
    echo = round_trips(model, "rfo_ros.nodes.echo_node", {"executor": executor}, "echo", settings)
    assert echo["echo_lost"] == 0 and 0 < echo["echo_p50_ms"] <= echo["echo_p99_ms"]
    assert echo["echo_b2b_p50_ms"] > 0


def test_latency_bench_measures_the_node_with_its_own_diagnostics(tmp_path):
    model = export_untrained_policy(tmp_path / "untrained.onnx", flow_steps=1, chunk=1)
    node = node_latency(model, "cpu", 30, 5, 200.0)
    assert node["node_lost"] == 0 and 0 < node["node_p50_ms"] <= node["node_p99_ms"]
    assert node["node_model_p50_ms"] is not None  # the node's own diagnostics came back


def test_the_model_is_timed_bare_and_inside_the_control_law(tmp_path):
    """``bench latency``'s model rows: back to back, paced, and paced inside ``Controller`` (the node's law
    without ROS), one plan per state; a model with odometry gets it fed too."""
    model = export_untrained_policy(tmp_path / "odom.onnx", flow_steps=1, chunk=2)
    rows = model_latency(model, "cpu", 40, rate_hz=400.0)
    for name in ("model", "model_paced", "controller_model_paced"):
        assert 0 < rows[f"{name}_p50_ms"] <= rows[f"{name}_p99_ms"], name


def test_latency_bench_with_a_depth_camera_beside_the_states(tmp_path):
    """``bench latency --camera``: a perceptive model fed 320x240 16UC1 frames (+ CameraInfo) at 0.3 of the
    state rate answers every state, and its diagnostics give the frames' own latency."""
    from rfo_ros.nodes.latency_driver import DepthStream
    from rfo_ros.runtime.camera import Intrinsics

    model = export_untrained_policy(tmp_path / "seeing.onnx", task=CAMERA_TASK, flow_steps=1, chunk=1)
    stream = DepthStream(Intrinsics.from_fovy(320, 240, 58.0), "16UC1", frames_per_state=0.3)
    settings = argparse.Namespace(n=30, warmup=5, rate_hz=200.0)
    params = {"model_path": model, "provider": "cpu", "tick_source": "state", "replan_every": 1,
              "publish_diagnostics_hz": 5.0, "watchdog_timeout_s": 1.0}  # fmt: skip
    cam = round_trips(model, "rfo_ros.nodes.policy_node", params, "cam_node", settings, True, stream)
    assert cam["cam_node_lost"] == 0 and 0 < cam["cam_node_p50_ms"] <= cam["cam_node_p99_ms"]
    assert cam["cam_node_images"] >= 0.3 * 35 - 2  # the frames reached the controller
    assert 0 < cam["cam_node_image_p50_ms"] <= cam["cam_node_image_p99_ms"]
    added = added_latency({**cam, "cam_model_p50_ms": 0.1, "cam_model_p99_ms": 0.2})
    assert added["cam_node_added_p50_ms"] == pytest.approx(cam["cam_node_p50_ms"] - 0.1)
    assert parse_resolution("640X480") == (640, 480)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_resolution("640")
