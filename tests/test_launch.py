"""launch/quadruped.launch.py and config/quadruped.yaml, tested without launch/launch_ros (no wheels here).

What can be checked on a pip-only machine: the file parses, names executables setup.py installs, points at
a parameter file that exists, and that file's parameters are exactly what the nodes declare, with the
declared types, and load through rcl's own YAML parser (``--params-file``, as launch_ros passes it).
Where ``launch`` is importable (a ROS 2 installation), the launch description is also built.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from pathlib import Path

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine

import pytest  # noqa: E402
import yaml  # noqa: E402
from go1 import JOINT_NAMES, TERMINATION  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.nodes.params import param_names  # noqa: E402
from rfo_ros.nodes.policy_lifecycle_node import PolicyLifecycleNode  # noqa: E402
from rfo_ros.nodes.policy_node import PARAMS as POLICY_PARAMS  # noqa: E402
from rfo_ros.nodes.policy_node import PolicyNode  # noqa: E402
from rfo_ros.nodes.sim_node import PARAMS as SIM_PARAMS  # noqa: E402
from rfo_ros.nodes.sim_node import SimNode  # noqa: E402
from rfo_ros.nodes.testing import NodeHarness  # noqa: E402

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "quadruped.launch.py"
PARAMS_FILE = REPO / "config" / "quadruped.yaml"
NODE_PARAMS = {"policy_node": POLICY_PARAMS, "sim_node": SIM_PARAMS}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _module_constants(tree: ast.Module) -> dict[str, object]:
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = stmt.value.value
    return out


def _value(node: ast.AST, constants: dict):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def console_scripts() -> dict[str, str]:
    """name -> "module:function" from setup.py's entry_points."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for call in _calls(tree, "setup"):
        entry_points = ast.literal_eval(_keyword(call, "entry_points"))
        return dict((part.strip() for part in line.split("=", 1)) for line in entry_points["console_scripts"])
    raise AssertionError("setup.py has no setup(...) call")


@pytest.fixture(scope="module")
def yaml_params() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text())


def test_launch_file_defines_generate_launch_description(launch_tree):
    functions = {n.name for n in launch_tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    arguments = {_value(call.args[0], {}) for call in _calls(launch_tree, "DeclareLaunchArgument")}
    assert {"namespace", "use_sim", "params_file", "model_path"} <= arguments


def test_launch_file_starts_installed_executables(launch_tree, console_scripts):
    constants = _module_constants(launch_tree)
    nodes = _calls(launch_tree, "Node")
    assert len(nodes) == 2
    for call in nodes:
        assert _value(_keyword(call, "package"), constants) == "rfo_ros"
        executable = _value(_keyword(call, "executable"), constants)
        assert executable in console_scripts, f"{executable} is not a console script in setup.py"
        assert _value(_keyword(call, "name"), constants) == executable
        module_name, function = console_scripts[executable].split(":")
        assert callable(getattr(importlib.import_module(module_name), function))
    assert "rfo_bringup" in console_scripts  # the pip-only equivalent of this launch file


def test_launch_file_can_start_the_managed_policy_node(launch_tree, console_scripts):
    """``lifecycle:=true``: the LifecycleNode runs an installed executable under the YAML's node name, and
    the file emits configure, then activate on reaching inactive."""
    constants = _module_constants(launch_tree)
    (call,) = _calls(launch_tree, "LifecycleNode")
    executable = _value(_keyword(call, "executable"), constants)
    assert executable == "policy_lifecycle_node" and executable in console_scripts
    assert _value(_keyword(call, "name"), constants) == "policy_node"  # the YAML's policy_node section
    text = LAUNCH_FILE.read_text()
    assert (
        "TRANSITION_CONFIGURE" in text and "TRANSITION_ACTIVATE" in text and 'goal_state="inactive"' in text
    )
    arguments = {_value(c.args[0], {}) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    assert "lifecycle" in arguments


def test_launch_file_remaps_the_policy_outputs_from_its_arguments(launch_tree):
    """command_topic/trajectory_topic reach both policy node variants as remappings of the two outputs
    (tests/test_nodes.py shows the remapped names carry the messages)."""
    arguments = {_value(c.args[0], {}) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    assert {"command_topic", "trajectory_topic"} <= arguments
    policy_nodes = [
        c for c in _calls(launch_tree, "Node") if _value(_keyword(c, "name"), {}) == "policy_node"
    ]
    for call in policy_nodes + _calls(launch_tree, "LifecycleNode"):
        assert isinstance(_keyword(call, "remappings"), ast.Name)  # the list built from the arguments
    text = LAUNCH_FILE.read_text()
    assert '("joint_commands", LaunchConfiguration("command_topic")' in text
    assert '("action_chunk", LaunchConfiguration("trajectory_topic")' in text
    assert (REPO / "config" / "ros2_control" / "quadruped_controllers.yaml").is_file()


def test_launch_file_parameters_come_from_an_existing_config_file(launch_tree):
    constants = _module_constants(launch_tree)
    assert (REPO / "config" / constants["PARAMS_FILE"]) == PARAMS_FILE
    assert PARAMS_FILE.is_file()
    assert "config" in LAUNCH_FILE.read_text()  # joined under the package's share directory


def test_yaml_parameters_are_exactly_what_the_nodes_declare(yaml_params):
    assert set(yaml_params) == {f"/**/{name}" for name in NODE_PARAMS}
    for node, table in NODE_PARAMS.items():
        values = yaml_params[f"/**/{node}"]["ros__parameters"]
        assert set(values) == param_names(table), f"{node}: YAML and declared parameters differ"
        for param in table:
            value = values[param.name]
            if isinstance(param.default, Parameter.Type):  # typed, no default: a string array here
                assert param.default == Parameter.Type.STRING_ARRAY
                assert isinstance(value, list) and all(isinstance(v, str) for v in value), param.name
                continue
            assert type(value) is type(param.default), (
                f"{node}.{param.name}: YAML {value!r} vs {param.default!r}"
            )


def test_yaml_uses_the_tasks_thresholds_and_joints(yaml_params):
    sim = yaml_params["/**/sim_node"]["ros__parameters"]
    policy = yaml_params["/**/policy_node"]["ros__parameters"]
    assert sim["robot"] == "go1"
    assert sim["fall_min_height"] == TERMINATION.min_height
    assert sim["fall_max_tilt_deg"] == TERMINATION.max_tilt_deg
    assert tuple(policy["robot_joint_names"]) == JOINT_NAMES


def test_nodes_load_the_yaml_through_rcl(yaml_params, tmp_path):
    """``--params-file`` (what launch_ros passes), in a namespace: every YAML value reaches the node."""
    model = export_untrained_policy(tmp_path / "untrained.onnx", flow_steps=2, chunk=4)
    with NodeHarness() as h:
        args = ["--ros-args", "--params-file", str(PARAMS_FILE)]
        sim = h.add(SimNode(**h.node_kwargs(cli_args=args)))
        policy = h.add(PolicyNode(**h.node_kwargs(cli_args=[*args, "-p", f"model_path:={model}"])))
        managed = h.add(PolicyLifecycleNode(**h.node_kwargs(cli_args=[*args, "-p", f"model_path:={model}"])))
        for node, name in ((sim, "sim_node"), (policy, "policy_node"), (managed, "policy_node")):
            expected = dict(yaml_params[f"/**/{name}"]["ros__parameters"])
            if name == "policy_node":
                expected["model_path"] = str(model)
            assert {k: getattr(node.params, k) for k in expected} == expected


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros is not installed")
def test_launch_description_builds():  # pragma: no cover - only on machines with ROS 2 installed
    spec = importlib.util.spec_from_file_location("quadruped_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert description.entities
