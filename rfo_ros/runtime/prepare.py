"""A checkpoint as a traceable graph module and its model contract (for the export and ``TorchPolicy``).

Here, below both the exporter and the runtime's torch backend, so that neither imports the other.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import onnx
import torch

from rfo_ros.checkpoint import load_actor
from rfo_ros.envs import Task, make_task
from rfo_ros.envs.gait import clock_columns
from rfo_ros.envs.legged_obs import ObsField, ObsLayout
from rfo_ros.nets.actor import Actor
from rfo_ros.runtime.camera import ModelCamera
from rfo_ros.runtime.graph import ExportModule
from rfo_ros.runtime.metadata import ImageSpec, ModelMetadata

#: The ONNX opset the export writes (named in the contract's ``exporter``).
OPSET = 17


class ExportError(RuntimeError):
    """The export failed a check (parity, graph ops, checkpoint/task mismatch); no file was written."""


# --- the contract ----------------------------------------------------------------------------------------
def actuated_joint_names(model: mujoco.MjModel) -> list[str]:
    """Per actuator, the name of the joint it drives (its own name for tendon/site transmissions)."""
    names, joint_kinds = [], {int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT)}
    for i in range(model.nu):
        if int(model.actuator_trntype[i]) in joint_kinds:
            name = model.joint(int(model.actuator_trnid[i, 0])).name
        else:
            name = model.actuator(i).name
        if not name:
            raise ExportError(
                f"actuator {i} drives an unnamed joint: name it in the MJCF (the model contract needs it)"
            )
        names.append(name)
    return names


def observation_layout(task: Task, obs_dim: int) -> ObsLayout:
    """The task's named observation fields, else one unnamed "state" field of ``obs_dim`` values."""
    if task.obs_layout is not None:
        return task.obs_layout
    return ObsLayout((ObsField.make("state", obs_dim, f"the {task.world} task's observation"),))


def model_camera(task: Task) -> ModelCamera | None:
    """The depth camera of an image task as the model's contract carries it (None without one)."""
    cam = task.depth_camera
    if cam is None:
        return None
    return ModelCamera(cam.width, cam.height, cam.fovy_deg, cam.max_range, depth=cam.depth)


def build_metadata(
    module: ExportModule, actor: Actor, payload: dict[str, Any], task: Task, checkpoint: str | os.PathLike
) -> ModelMetadata:
    """The model contract for ``module`` exported from ``checkpoint`` (trained on ``task``)."""
    amap, image_shape = task.action_map(), module.image_shape
    layout = observation_layout(task, module.obs_dim)
    layout_size = layout.size * task.obs_history
    if layout_size not in (module.obs_dim, actor.obs_dim):
        raise ExportError(
            f"the actor observes {actor.obs_dim} values but task {payload['task']!r} lays out {layout_size}"
        )
    return ModelMetadata(
        source=str(checkpoint),
        task=str(payload["task"]),
        algo=str(payload["algo"]),
        policy_kind=actor.kind,
        training_commit=str(payload["commit"]),
        export_time=datetime.now(UTC).isoformat(timespec="seconds"),
        # A legged task's policy joints (its robot file's order), else each actuator's joint.
        joint_names=tuple(task.joint_names or actuated_joint_names(task.model)),
        dt=task.dt,
        flow_steps=module.steps,
        flow_solver=module.solver,
        chunk=module.chunk,
        action_dim=module.action_dim,
        obs_dim=module.obs_dim,
        obs_layout=layout,
        obs_history=task.obs_history,
        normalization={"in_graph": True, "formula": "clip((obs - mean) / sqrt(var + eps), -clip, clip)",
                       "clip": actor.normalizer.clip, "eps": actor.normalizer.eps},
        action_scale=np.asarray(amap.scale, np.float64),
        action_offset=np.asarray(amap.offset, np.float64),
        action_low=np.asarray(amap.low, np.float64),
        action_high=np.asarray(amap.high, np.float64),
        image=ImageSpec(image_shape, task.image_encoding, model_camera(task)) if image_shape else None,
        zero_noise=module.zero_noise,
        inpainting=module.inpainting,
        robot=task.robot_spec(),
        checkpoint={"file": Path(checkpoint).name, "iteration": payload.get("iteration"),
                    "env_steps": payload.get("env_steps")},
        route=payload.get("route"),
        exporter=f"rfo_ros.export (torch {torch.__version__}, onnx {onnx.__version__}, opset {OPSET})",
    )  # fmt: skip


def prepare(
    checkpoint: str | os.PathLike,
    zero_noise: bool = False,
    steps: int | None = None,
    task: Task | None = None,
    inpainting: bool = False,
) -> tuple[ExportModule, ModelMetadata, Task]:
    """Load a checkpoint; build the graph module, its contract and the task (for export and TorchPolicy)."""
    actor, payload = load_checkpoint_actor(checkpoint)
    try:
        task = task or make_task(payload["task"], **payload.get("task_options", {}))
        gait = task.gait
        clock = None if gait is None else clock_columns(task.obs_layout, task.obs_history)
        module = ExportModule(
            actor, task.action_map(), zero_noise=zero_noise, steps=steps, inpainting=inpainting,
            gait=gait, clock=clock,
        )  # fmt: skip
    except (KeyError, ValueError, TypeError) as exc:
        raise ExportError(f"cannot export {checkpoint}: {exc}") from exc
    return module, build_metadata(module, actor, payload, task, checkpoint), task


def load_checkpoint_actor(checkpoint: str | os.PathLike) -> tuple[Actor, dict[str, Any]]:
    """The checkpoint's actor (eval mode) and payload, every problem a ``CheckpointError``."""
    return load_actor(checkpoint)
