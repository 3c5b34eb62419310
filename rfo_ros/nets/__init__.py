"""Networks: flow and tanh-Gaussian policies, critics, observation normaliser, image encoder."""

from rfo_ros.nets.critic import Critic
from rfo_ros.nets.encoders import ImageEncoder, ObsSplit
from rfo_ros.nets.flow import FlowPolicy
from rfo_ros.nets.gaussian import TanhGaussianPolicy
from rfo_ros.nets.mlp import mlp
from rfo_ros.nets.normalizer import ObsNormalizer

__all__ = ["Critic", "FlowPolicy", "ImageEncoder", "ObsNormalizer", "ObsSplit", "TanhGaussianPolicy", "mlp"]
