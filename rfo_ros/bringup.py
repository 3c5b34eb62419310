"""``python -m rfo_ros.bringup quadruped``: the launch file's nodes, in one process, for pip-only machines.

    python -m rfo_ros.bringup quadruped [--headless] [--duration 20] [--report] [--model PATH]
                                        [--params config/quadruped.yaml] [--fast] [--strip out.png]
                                        [--video out.mp4] [--lifecycle] [--terrain [--course-seed N]]
    python -m rfo_ros.bringup --robot config/robots/<name>.yaml --model models/<name>.onnx [...]

``--robot`` (default ``go1``, the quadruped; ``quadruped`` names it too) is a robot file: the sim node
simulates it, and the policy node commands its joints at the middle of its command ranges; every other
parameter comes from ``--params``.

Starts what ``launch/quadruped.launch.py`` starts — ``sim_node`` and ``policy_node`` with their
``ros__parameters`` from the same YAML (loaded as ``--params-file``, exactly as ``launch_ros`` passes it) —
each on its own executor thread, as two processes would run them (the policy node's state topics on its
input thread), for ``--duration`` seconds of sim time. (One ``SingleThreadedExecutor`` per node rather than
a ``MultiThreadedExecutor``: Jazzy's does not wait for running callbacks when shut down.)

``--terrain`` runs the robot in the obstacle-course world (``sim/quadruped_terrain.xml``, the world of the
``quadruped_terrain`` tasks; the Go1-class quadruped only), one course drawn from ``--course-seed``,
commanded at the middle of the course's speeds. A model with a depth image input gets the sim node's
depth camera (``publish_depth``: 320x240 z-depth + CameraInfo at 30 Hz, resampled by the policy node to
the model's camera) from the camera the model was trained with (its robot contract's ``camera``: the chin
camera of ``quadruped_terrain_depth``, the front one of ``quadruped_depth``); a blind model runs blind.
The report then adds the crossing (the trunk past the course's finish without a fall) and the camera's
frames, rate and latency (rmw reception of a frame -> the controller has it, resampling included).

``--lifecycle`` starts the managed policy node instead (``policy_lifecycle_node``, as the launch file's
``lifecycle:=true``) and drives it through configure and activate before the run; a failed configure
is reported with its reason.

``--fast`` runs the loop in lock-step as fast as the machine allows (sim ``real_time_factor: 0``,
``lockstep: true``; policy ``tick_source: state``); otherwise the sim runs in real time and the policy on
its steady-clock timer, as on a robot.

The control latency in the report is the policy node's own measurement (rmw reception of ``joint_states``
-> ``action_chunk`` published) taken while it shares the process with the simulator, so it includes any
wait for the interpreter the sim thread causes: a pessimistic figure. ``python -m rfo_ros.bench latency``
measures the node alone in its own process.

Discovery stays on this machine and in a random domain (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, a
random ``ROS_DOMAIN_ID``) unless those variables are set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco: headless offscreen rendering

from rfo_ros.demo_report import CameraSummary, DemoReport  # noqa: E402
from rfo_ros.nodes.spin import isolated_ros_env  # noqa: E402
from rfo_ros.paths import DEFAULT_PARAMS, package_file, resolve_model_path  # noqa: E402

#: Demo names accepted as the positional argument, and the robot file each brings up.
DEMOS = {"quadruped": "go1"}
DEFAULT_ROBOT = "go1"
#: The robot of the obstacle-course world (``--terrain``: ``sim/quadruped_terrain.xml`` includes it).
TERRAIN_ROBOT = "go1"
#: Frames per second of sim time in ``--video`` (the sim node's ``record_every_s`` is set to match).
VIDEO_FPS = 30.0
#: Parameters ``--fast`` sets on top of the YAML: an exact lock-step loop, no real-time pacing.
FAST_OVERRIDES = {
    "sim_node": {"real_time_factor": 0.0, "lockstep": True},
    "policy_node": {"tick_source": "state"},
}


class BringupError(RuntimeError):
    """The demo cannot start (missing model or parameter file, a node refused its configuration)."""


def run_bringup(
    robot: str | os.PathLike = DEFAULT_ROBOT,
    duration: float = 20.0,
    model: str | os.PathLike | None = None,
    params: str | os.PathLike | None = None,
    fast: bool = False,
    strip: str | os.PathLike | None = None,
    overrides: dict[str, dict] | None = None,
    wall_timeout: float | None = None,
    lifecycle: bool = False,
    video: str | os.PathLike | None = None,
    terrain: bool = False,
    course_seed: int = 0,
) -> DemoReport:
    """Run the sim + policy nodes on ``robot`` (a robot file, a name in config/robots, or a demo name of
    ``DEMOS``) for ``duration`` s of sim time and report what happened.

    ``overrides``: extra parameters per node name (``{"policy_node": {...}, "sim_node": {...}}``), applied
    over the YAML (and over ``--fast``). ``wall_timeout``: stop after this many wall seconds in any case
    (the report then says it is incomplete); default generous. ``lifecycle``: the managed policy node,
    configured and activated here. ``video``: an MP4 of the whole run (the sim then records its state at
    ``VIDEO_FPS`` unless ``overrides`` set ``record_every_s``). ``terrain``: the obstacle-course world with
    one course drawn from ``course_seed``, the depth camera on for a depth model (module docstring).
    """
    from rfo_ros.robot import RobotError, node_parameters, read_description

    params_file = package_file(params or DEFAULT_PARAMS)
    if not params_file.is_file():
        raise BringupError(f"parameter file not found: {params_file}")
    robot = DEMOS.get(str(robot), robot)
    terrain_overrides, scratch = {}, None
    try:
        if terrain and read_description(robot).name != TERRAIN_ROBOT:
            raise BringupError(f"--terrain: the obstacle course is for the {TERRAIN_ROBOT}, not {robot!r}")
        if terrain:  # its robot file: removed when the run ends (or, on an early error, at exit)
            scratch = tempfile.TemporaryDirectory(prefix="rfo_bringup_")
            robot, terrain_overrides = terrain_setup(model, course_seed, Path(scratch.name))
        robot_params, robot_name = node_parameters(robot), read_description(robot).name
    except RobotError as exc:
        raise BringupError(str(exc)) from exc
    video_overrides = {"sim_node": {"record_every_s": 1.0 / VIDEO_FPS}} if video else {}
    node_overrides = _merge(
        robot_params, terrain_overrides, video_overrides, FAST_OVERRIDES if fast else {}, overrides or {}
    )
    if model is not None:
        node_overrides.setdefault("policy_node", {})["model_path"] = str(model)
    node_overrides.setdefault("policy_node", {})["use_sim_time"] = True  # as the launch file with use_sim
    os.environ.update(isolated_ros_env())

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from rfo_ros.nodes.policy_lifecycle_node import PolicyLifecycleNode
    from rfo_ros.nodes.policy_node import PolicyNode, PolicyNodeError
    from rfo_ros.nodes.sim_node import SimNode
    from rfo_ros.render import save_image_strip, save_video

    context = Context()
    rclpy.init(context=context)
    nodes = []
    try:
        try:
            sim = SimNode(
                context=context, cli_args=_ros_args(params_file, node_overrides.get("sim_node", {}))
            )
            nodes.append(sim)
            policy_class = PolicyLifecycleNode if lifecycle else PolicyNode
            policy = policy_class(
                context=context, cli_args=_ros_args(params_file, node_overrides.get("policy_node", {}))
            )
            nodes.append(policy)
            if lifecycle:
                _activate(policy)
        except (PolicyNodeError, ValueError, FileNotFoundError) as exc:
            raise BringupError(str(exc)) from exc
        executors = []
        for node in nodes:
            executors.append(SingleThreadedExecutor(context=context))
            executors[-1].add_node(node)
        timeout = wall_timeout or _default_wall_timeout(duration, sim)
        complete, wall = _spin_until(executors, sim, duration, timeout)
        stats, sim_report = policy.ports.stats, sim.report()
        meta = policy.ports.metadata
        course = getattr(sim, "course_layout", None)  # the run's obstacle course, in its pictures
        report = DemoReport(
            robot=robot_name,
            model_path=str(policy.ports.model_path),
            task=meta.task,
            flow_steps=meta.flow_steps,
            chunk=meta.chunk,
            policy_shape=meta.policy_shape,
            provider=stats.provider,
            policy_inputs=subscribed_topics(policy),
            mode="lock-step, as fast as possible" if fast else "real time, steady-clock control timer",
            sim_time=sim_report.sim_time,
            wall_time=wall,
            distance_m=sim_report.distance_m,
            forward_distance_m=sim_report.forward_distance_m,
            mean_forward_speed=sim_report.mean_forward_speed,
            command_vx=float(policy.params.default_cmd_vx),
            falls=sim_report.falls,
            control_latency=stats.node_latency,
            model_latency=stats.model_latency,
            plans=stats.plans,
            control_steps=stats.ticks,
            hold_steps=stats.hold_ticks,
            dropped_messages=stats.dropped_total + sim.dropped,
            complete=complete,
            strip_path=_picture(save_image_strip, strip, sim, course),
            video_path=_picture(save_video, video, sim, course),
            notes=_notes(meta, stats),
            crossings=sim_report.crossings,
            attempts=sim_report.attempts,
            course_finish_x=sim_report.course_finish_x,
            camera=camera_summary(stats, sim_report) if meta.image is not None else None,
        )
    finally:
        for node in reversed(nodes):  # the policy first: its hold command still reaches the sim
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        if scratch is not None:
            scratch.cleanup()
    return report


def terrain_setup(model: str | os.PathLike | None, course_seed: int, tmp: Path) -> tuple[Path, dict]:
    """(robot file, node parameters) of the obstacle-course demo for ``model`` (default: the shipped one).

    The robot file (written to ``tmp``) is the model's robot placed in the course world, with the camera the
    model was trained with; the sim node draws the course from ``course_seed`` and, for a model with a depth
    image input, publishes its depth camera from that camera."""
    import yaml

    from rfo_ros.envs.course_walk import QuadrupedTerrain, course_description
    from rfo_ros.robot import RobotError, description_tree, read_description
    from rfo_ros.runtime import ModelError, load_metadata

    path = resolve_model_path(model)
    try:
        meta = load_metadata(path)
    except (ModelError, OSError) as exc:
        raise BringupError(f"--terrain: cannot read the model {path}: {exc}") from exc
    trained = (meta.robot or {}).get("description") or TERRAIN_ROBOT
    try:
        description = course_description(trained, QuadrupedTerrain.course_world)
    except (RobotError, ValueError) as exc:
        raise BringupError(f"--terrain: {exc}") from exc
    # The course world includes the Go1-class quadruped's MJCF: any robot file on that MJCF (go1, or go1_trot
    # with its gait prior) runs there.
    course_mjcf = (read_description(TERRAIN_ROBOT).mjcf, QuadrupedTerrain.course_world)
    trained_mjcf = trained.get("mjcf") if isinstance(trained, dict) else read_description(trained).mjcf
    if trained_mjcf not in course_mjcf:
        raise BringupError(f"--terrain: the obstacle course is the {TERRAIN_ROBOT} robot's; {path} drives "
                           f"{description.name!r} on {trained_mjcf!r}")  # fmt: skip
    depth = meta.image is not None and meta.image.shape[0] == 1
    own_camera = trained.get("camera") if isinstance(trained, dict) else None
    if depth and own_camera:  # the camera the model saw in training, wherever the course's looks
        description = description.model_copy(update={"camera": own_camera})
    robot_file = tmp / f"{description.name}_terrain.yaml"
    robot_file.write_text(yaml.safe_dump(description_tree(description), sort_keys=False))
    sim = {"course_seed": int(course_seed), "publish_depth": depth}
    if depth:
        sim["camera_name"] = description.camera
    return robot_file, {"sim_node": sim}


def camera_summary(stats, sim_report) -> CameraSummary:
    """What the policy node made of the sim's depth camera: frames published and used, their rate (sim
    time), latency, frames dropped, the camera in use."""
    t = sim_report.sim_time
    dropped = sum(n for reason, n in stats.dropped.items() if reason.startswith("image/"))
    return CameraSummary(
        published=sim_report.depth_frames,
        used=stats.images,
        rate_hz=stats.images / t if t > 0 else 0.0,
        latency=stats.image_latency,
        dropped=dropped,
        status=stats.camera,
    )


def _picture(save, path, sim, course) -> str | None:
    """``save`` (the strip's or the video's) of the sim's trajectory to ``path``, if asked for."""
    return str(save(sim.world, sim.trajectory, path, course_layout=course)) if path else None


def _activate(policy) -> None:
    """configure, then activate, the managed policy node; a failure names its reason."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if policy.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise BringupError(f"policy node failed to configure: {policy.configure_error}")
    if policy.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise BringupError("policy node failed to activate (see the log above)")


def _merge(*layers: dict[str, dict]) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for layer in layers:
        for node, values in layer.items():
            merged.setdefault(node, {}).update(values)
    return merged


def _ros_args(params_file: Path, overrides: dict) -> list[str]:
    """``--ros-args --params-file YAML -p name:=value ...`` (what ``launch_ros`` builds for a Node)."""
    args = ["--ros-args", "--params-file", str(params_file)]
    for name, value in overrides.items():
        args += ["-p", f"{name}:={_yaml_value(value)}"]
    return args


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return str(value) if not isinstance(value, str) else json.dumps(value)


def _default_wall_timeout(duration: float, sim) -> float:
    rtf = sim.params.real_time_factor
    return 60.0 + (duration / rtf * 3.0 if rtf > 0 else duration * 20.0)


def _spin_until(executors, sim, duration: float, wall_timeout: float) -> tuple[bool, float]:
    """Spin each executor on a thread until ``duration`` s of sim time; (reached it?, wall seconds)."""
    threads = [
        threading.Thread(target=ex.spin, name=f"rfo_bringup_{i}", daemon=True)
        for i, ex in enumerate(executors)
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while sim.sim_time < duration - 1e-9 and time.monotonic() - start < wall_timeout:
            if not all(thread.is_alive() for thread in threads):
                raise BringupError("an executor stopped unexpectedly (see the log above)")
            time.sleep(0.01)
    finally:
        wall = time.monotonic() - start
        for executor in executors:
            executor.shutdown(timeout_sec=5.0)
        for thread in threads:
            thread.join(timeout=5.0)  # a SingleThreadedExecutor runs callbacks inline: none is left over
    return sim.sim_time >= duration - 1e-9, wall


def subscribed_topics(node) -> list[str]:
    """The topics ``node`` subscribes to, by their last name part, sorted (what a policy reads). Read
    from the node itself: the ROS graph's view of it waits on discovery, which a one-second lock-step
    run can end before (it then listed no inputs at all)."""
    return sorted({sub.topic_name.rsplit("/", 1)[-1] for sub in node.subscriptions})


def _notes(meta, stats) -> list[str]:
    notes = []
    if meta.algo == "untrained":
        notes.append("untrained policy: plumbing check only, expect no walking")
    if "CUDA" not in stats.provider:
        notes.append("CPU execution provider (no usable GPU on this machine)")
    return notes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rfo_ros.bringup", description=__doc__.split("\n\n")[0])
    p.add_argument("demo", nargs="?", choices=sorted(DEMOS), help="a named demo (quadruped = --robot go1)")
    p.add_argument(
        "--robot", default=None, help=f"robot file, or a name in config/robots (default {DEFAULT_ROBOT})"
    )
    p.add_argument("--headless", action="store_true", help="no viewer (the only mode in this build)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of sim time (default 20)")
    p.add_argument("--report", action="store_true", help="print the report when done")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.add_argument("--model", default=None, help="ONNX policy (default: the YAML's, models/quadruped.onnx)")
    p.add_argument(
        "--untrained", action="store_true", help="run a freshly exported untrained policy (plumbing check)"
    )
    p.add_argument("--params", default=None, help=f"ROS parameter YAML (default {DEFAULT_PARAMS})")
    p.add_argument("--fast", action="store_true", help="lock-step, as fast as possible, instead of real time")
    p.add_argument("--strip", default=None, help="save a PNG image strip of the rollout here")
    p.add_argument("--video", default=None, help="save an MP4 of the rollout here (tracking camera)")
    p.add_argument(
        "--lifecycle",
        action="store_true",
        help="the managed (lifecycle) policy node, configured and activated",
    )
    p.add_argument(
        "--terrain",
        action="store_true",
        help="the obstacle-course world (sim/quadruped_terrain.xml); depth models get the sim's depth camera",
    )
    p.add_argument("--course-seed", type=int, default=0, help="seed of the --terrain course (-1: the MJCF's)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``rfo_bringup`` console script; exit 0 when the run completed, 1 when it could not start or finish."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo and args.robot:
        parser.error("give a demo name or --robot, not both")
    robot = args.robot or DEMOS.get(args.demo, DEFAULT_ROBOT)
    if not args.headless:
        print("rfo_bringup: no viewer in this build; running headless", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rfo_bringup_") as tmp:
        model = args.model
        if args.untrained:
            from rfo_ros.bench.latency import export_untrained_policy

            legged = {} if robot == DEFAULT_ROBOT else {"task": "legged", "robot": robot}
            if args.terrain:  # a perceptive policy: the plumbing of the camera too
                legged = {"task": "quadruped_terrain_depth"}
            model = export_untrained_policy(Path(tmp) / "untrained.onnx", **legged)
        elif model is None and not resolve_model_path(None).is_file():
            print(
                f"rfo_bringup: error: no trained policy at {resolve_model_path(None)} yet; "
                "pass --model PATH, or --untrained to check the plumbing with a random policy",
                file=sys.stderr,
            )
            return 1
        try:
            report = run_bringup(
                robot,
                args.duration,
                model,
                args.params,
                args.fast,
                args.strip,
                lifecycle=args.lifecycle,
                video=args.video,
                terrain=args.terrain,
                course_seed=args.course_seed,
            )
        except BringupError as exc:
            print(f"rfo_bringup: error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.as_dict()))
    if args.report:
        print(report.text())
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
