"""Quadruped demo: the policy node, plus the MuJoCo sim node when ``use_sim`` is true.

    ros2 launch rfo_ros quadruped.launch.py                         # sim + policy, simulated time
    ros2 launch rfo_ros quadruped.launch.py use_sim:=false          # policy only, on the robot
    ros2 launch rfo_ros quadruped.launch.py namespace:=go1 model_path:=/path/to/policy.onnx
    ros2 launch rfo_ros quadruped.launch.py lifecycle:=true         # managed policy node, taken to active
    ros2 launch rfo_ros quadruped.launch.py robot:=/path/to/my_robot.yaml model_path:=/path/to/my_robot.onnx

``command_topic:=`` / ``trajectory_topic:=`` remap the policy's ``joint_commands`` / ``action_chunk`` onto
ros2_control's controllers (config/ros2_control/quadruped_controllers.yaml says which and how).

With ``lifecycle:=true`` the policy runs as a managed node (``policy_lifecycle_node``, still named
``policy_node``): the launch file emits configure, and activate once it is inactive; a failed configure
leaves it unconfigured (``ros2 lifecycle set /policy_node configure`` retries).

Parameters come from share/rfo_ros/config/quadruped.yaml (``params_file`` to use another). On machines
without ``launch``/``launch_ros`` (pip-only), ``python -m rfo_ros.bringup quadruped`` starts the same nodes
from the same YAML.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

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
    sim_overrides = {}
    robot = LaunchConfiguration("robot").perform(context)
    if robot:  # the robot file names the sim's world and the policy's joint order and command
        from rfo_ros.robot import node_parameters

        per_node = node_parameters(robot)
        sim_overrides.update(per_node["sim_node"])
        policy_overrides.update(per_node["policy_node"])
    if model_path:
        policy_overrides["model_path"] = model_path
    # The policy's outputs onto ros2_control's topics (config/ros2_control/quadruped_controllers.yaml).
    remappings = [
        ("joint_commands", LaunchConfiguration("command_topic").perform(context)),
        ("action_chunk", LaunchConfiguration("trajectory_topic").perform(context)),
    ]
    if _truthy(LaunchConfiguration("lifecycle").perform(context)):
        nodes = _managed_policy(namespace, [params_file, policy_overrides], remappings)
    else:
        nodes = [
            Node(
                package=PACKAGE,
                executable="policy_node",
                name="policy_node",
                namespace=namespace,
                parameters=[params_file, policy_overrides],
                remappings=remappings,
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
                parameters=[params_file, sim_overrides],
                output="screen",
            ),
        )
    return nodes


def _managed_policy(namespace: str, parameters: list, remappings: list) -> list:
    """The lifecycle policy node, configured at start and activated once it reaches inactive."""
    policy = LifecycleNode(
        package=PACKAGE,
        executable="policy_lifecycle_node",
        name="policy_node",
        namespace=namespace,
        parameters=parameters,
        remappings=remappings,
        output="screen",
    )

    def transition(transition_id: int) -> EmitEvent:
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matches_action(policy), transition_id=transition_id)
        )

    activate_when_inactive = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=policy,
            goal_state="inactive",
            entities=[transition(Transition.TRANSITION_ACTIVATE)],
        )
    )
    return [policy, activate_when_inactive, transition(Transition.TRANSITION_CONFIGURE)]


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
            DeclareLaunchArgument(
                "robot",
                default_value="",
                description="robot file (config/robots/<name>.yaml or a path); empty = the YAML's (go1)",
            ),
            DeclareLaunchArgument(
                "command_topic",
                default_value="joint_commands",
                description="where per-step joint_commands go, e.g. /forward_position_controller/commands",
            ),
            DeclareLaunchArgument(
                "trajectory_topic",
                default_value="action_chunk",
                description="where action chunks go, e.g. /joint_trajectory_controller/joint_trajectory",
            ),
            DeclareLaunchArgument(
                "lifecycle",
                default_value="false",
                description="run the policy as a managed (lifecycle) node, configured and activated here",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
