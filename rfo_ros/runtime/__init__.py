"""Policy inference without ROS: model contract, ONNX Runtime / torch backends, chunk scheduling.

Importing this package loads numpy and onnxruntime only; ``TorchPolicy`` (torch + MuJoCo) loads on
first use, so a robot computer with onnxruntime-gpu alone can run the ONNX backend.
"""

from rfo_ros.runtime.chunks import BLENDS, ChunkScheduler
from rfo_ros.runtime.metadata import ImageSpec, ModelError, ModelMetadata, RobotMismatchError
from rfo_ros.runtime.ort_model import OrtPolicy, load_metadata
from rfo_ros.runtime.policy import (
    GpuUnavailableError,
    InferenceError,
    Policy,
    make_policy,
    measure_model_latency,
)

__all__ = [
    "BLENDS",
    "ChunkScheduler",
    "GpuUnavailableError",
    "ImageSpec",
    "InferenceError",
    "ModelError",
    "ModelMetadata",
    "OrtPolicy",
    "Policy",
    "RobotMismatchError",
    "TorchPolicy",
    "load_metadata",
    "make_policy",
    "measure_model_latency",
]


def __getattr__(name: str):
    if name == "TorchPolicy":
        from rfo_ros.runtime.torch_model import TorchPolicy

        return TorchPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
