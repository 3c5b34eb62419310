"""rfo_ros: Reparameterization Flow Policy Optimization over differentiable MuJoCo, deployed with ROS 2."""

__version__ = "0.1.0"
