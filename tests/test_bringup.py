"""End to end: ``rfo_ros.bringup`` runs the sim and policy nodes from config/quadruped.yaml and reports.

With an untrained policy the robot does not walk, but every report field must be there and sane. The
closed-loop walking test needs the trained models/quadruped.onnx and is skipped only while it is absent.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine

import pytest  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.bringup import main, run_bringup  # noqa: E402
from rfo_ros.demo_report import DemoReport  # noqa: E402
from rfo_ros.paths import resolve_model_path  # noqa: E402
from rfo_ros.runtime.ort_model import load_metadata  # noqa: E402

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[1]
TRAINED_MODEL = resolve_model_path(None)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return export_untrained_policy(
        tmp_path_factory.mktemp("policy") / "untrained.onnx", flow_steps=4, chunk=4
    )


def check_report(report: DemoReport, duration: float) -> None:
    assert report.complete and report.sim_time >= duration - 1e-9
    for name in ("distance_m", "forward_distance_m", "mean_forward_speed", "wall_time"):
        assert math.isfinite(getattr(report, name)), name
    assert report.distance_m >= abs(report.forward_distance_m) - 1e-9
    assert report.mean_forward_speed == pytest.approx(report.forward_distance_m / report.sim_time)
    assert isinstance(report.falls, int) and report.falls >= 0
    assert report.provider == "CPUExecutionProvider"
    assert report.plans > 0 and report.control_steps >= report.plans
    assert {"joint_states", "imu"} <= set(report.policy_inputs)
    assert report.control_latency.count == report.plans == report.model_latency.count
    assert 0 < report.model_latency.p50_ms <= report.control_latency.p50_ms
    assert report.control_latency.p50_ms <= report.control_latency.p99_ms
    text = report.text()
    for label in ("distance walked", "falls", "mean forward speed", "control latency", "execution provider"):
        assert label in text
    assert set(report.as_dict()) == {f.name for f in fields(DemoReport)}


def test_real_time_bringup_reports_every_field(model_path):
    report = run_bringup("quadruped", duration=2.0, model=model_path)
    check_report(report, 2.0)
    assert report.mode.startswith("real time")
    assert report.wall_time >= 2.0 * 0.9  # paced by the wall clock


def test_lockstep_bringup_steps_once_per_command(model_path):
    report = run_bringup("quadruped", duration=2.0, model=model_path, fast=True)
    check_report(report, 2.0)
    assert report.hold_steps == 0 and report.dropped_messages == 0
    assert report.control_steps == pytest.approx(report.sim_time / 0.01, abs=2)  # one command per state


def test_lockstep_bringup_of_the_lifecycle_node(model_path):
    """``--lifecycle``: the managed policy node, taken through configure and activate, closes the loop."""
    report = run_bringup("quadruped", duration=1.0, model=model_path, fast=True, lifecycle=True)
    check_report(report, 1.0)
    assert report.hold_steps == 0


def test_lifecycle_bringup_reports_why_configure_failed(tmp_path, capsys):
    missing = str(tmp_path / "none.onnx")
    assert main(["quadruped", "--headless", "--duration", "1", "--lifecycle", "--model", missing]) == 1
    assert "policy node failed to configure: policy model not found" in capsys.readouterr().err


def test_cli_prints_json_and_report_and_saves_a_strip(tmp_path):
    strip = tmp_path / "strip.png"
    cmd = [sys.executable, "-m", "rfo_ros.bringup", "quadruped", "--headless", "--duration", "1", "--fast"]
    video = tmp_path / "demo.mp4"
    cmd += ["--untrained", "--json", "--report", "--strip", str(strip), "--video", str(video)]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    data = json.loads(lines[0])
    assert data["complete"] and data["sim_time"] >= 1.0 and data["provider"] == "CPUExecutionProvider"
    assert "untrained policy" in " ".join(data["notes"])
    assert any(line.strip().startswith("falls") for line in lines[1:])
    assert strip.is_file() and strip.stat().st_size > 1000
    assert data["video_path"] == str(video) and any(str(video) in line for line in lines[1:])
    import imageio.v2 as imageio

    with imageio.get_reader(video) as reader:
        frames = reader.count_frames()
        assert reader.get_meta_data()["fps"] == pytest.approx(30.0, rel=0.05)
    # One frame per 1/30 s of the sim time that ran (>= 1 s; with --fast the stop may land a little later).
    assert abs(frames - (1 + 30 * data["sim_time"])) <= 2, (frames, data["sim_time"])


def test_missing_model_fails_cleanly(tmp_path, capsys):
    assert main(["quadruped", "--headless", "--duration", "1", "--model", str(tmp_path / "none.onnx")]) == 1
    assert "policy model not found" in capsys.readouterr().err


@pytest.mark.skipif(not TRAINED_MODEL.is_file(), reason=f"no trained policy at {TRAINED_MODEL} yet")
def test_trained_policy_walks_forward_without_falling():
    duration = 10.0
    report = run_bringup("quadruped", duration=duration, fast=True)
    assert report.complete and report.falls == 0, report.text()
    assert report.forward_distance_m > 0.6 * duration * 0.8, report.text()
    # It holds its heading: along the start heading for nearly all of the distance walked.
    assert report.forward_distance_m >= 0.95 * report.distance_m, report.text()
    assert "odom" not in report.policy_inputs  # the shipped policy is the hardware one: joints and IMU
    meta = load_metadata(TRAINED_MODEL)  # and it is a chunked flow, as RFO's policies are
    assert meta.policy_kind == "flow" and meta.chunk >= 4 and meta.route, meta.policy_shape


def test_bringup_of_a_robot_that_is_not_the_quadruped(tmp_path, capsys):
    """``--robot``: the hexapod's robot file brings up its world, joint order and command; the policy
    node needs only the model."""
    hexapod = REPO / "config" / "robots" / "hexapod.yaml"
    model = export_untrained_policy(
        tmp_path / "hexapod.onnx", task="legged", robot=str(hexapod), flow_steps=2, chunk=4
    )
    report = run_bringup(hexapod, duration=1.0, model=model, fast=True)
    check_report(report, 1.0)
    assert report.robot == "hexapod" and report.hold_steps == 0 and report.dropped_messages == 0
    assert report.command_vx == pytest.approx(0.75)  # the middle of its vx range [0.5, 1.0]
    # The quadruped's model cannot drive it: the error names the joints.
    if TRAINED_MODEL.is_file():
        assert main(["--robot", str(hexapod), "--headless", "--duration", "1", "--fast"]) == 1
        assert "model and robot disagree" in capsys.readouterr().err
