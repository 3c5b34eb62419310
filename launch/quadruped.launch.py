"""Quadruped demo: the policy node, plus the MuJoCo sim node when ``use_sim`` is true.

    ros2 launch rfo_ros quadruped.launch.py                         # sim + policy, simulated time
    ros2 launch rfo_ros quadruped.launch.py use_sim:=false          # policy only, on the robot
    ros2 launch rfo_ros quadruped.launch.py namespace:=go1 model_path:=/path/to/policy.onnx

Parameters come from share/rfo_ros/config/quadruped.yaml (``params_file`` to use another). On machines
without ``launch``/``launch_ros`` (pip-only), ``python -m rfo_ros.bringup quadruped`` starts the same nodes
from the same YAML.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "rfo_ros"
PARAMS_FILE = "quadruped.yaml"


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on")


def _nodes(context):
    """The nodes, built once the launch arguments have values."""
    namespace = LaunchConfiguration("namespace").perform(context)
    use_sim = _truthy(LaunchConfiguration("use_sim").perform(context))
    params_file = LaunchConfiguration("params_file").perform(context)
    model_path = LaunchConfiguration("model_path").perform(context)
    policy_overrides = {"use_sim_time": use_sim}
    if model_path:
        policy_overrides["model_path"] = model_path
    nodes = [
        Node(
            package=PACKAGE,
            executable="policy_node",
            name="policy_node",
            namespace=namespace,
            parameters=[params_file, policy_overrides],
            output="screen",
        )
    ]
    if use_sim:
        nodes.insert(
            0,
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                namespace=namespace,
                parameters=[params_file],
                output="screen",
            ),
        )
    return nodes


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
            DeclareLaunchArgument(
                "use_sim",
                default_value="true",
                description="also start the MuJoCo sim node, and run the policy node on its /clock",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", PARAMS_FILE),
                description="ROS parameter YAML for policy_node and sim_node",
            ),
            DeclareLaunchArgument(
                "model_path", default_value="", description="ONNX policy (overrides the YAML's model_path)"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
