"""The Go1-class quadruped's joint contract, read from its robot file (config/robots/go1.yaml)."""

from rfo_ros.robot import Robot

GO1 = Robot.load("go1")
JOINT_NAMES = GO1.joint_names
DEFAULT_JOINT_POS = tuple(GO1.standing_pose.tolist())
TERMINATION = GO1.description.termination
