"""rclpy nodes (the only ROS code in the package besides launch/): ``policy_node``, ``sim_node``.

``policy_node`` runs an exported ONNX policy on robot state and publishes action chunks and per-step joint
commands (topics listed in ``rfo_ros.nodes.policy_ports``); ``sim_node`` is a MuJoCo world from ``sim/``
behind the same topics. Console scripts: ``ros2 run rfo_ros policy_node`` / ``sim_node``; both in one
process: ``python -m rfo_ros.bringup``.
"""
