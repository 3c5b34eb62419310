"""Checkpoint -> ONNX export: ORT-vs-torch parity, straight-line graph, metadata, failure paths."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rfo_ros.export as export
from rfo_ros.checkpoint import CheckpointError, save_checkpoint
from rfo_ros.envs import TASKS, make_task
from rfo_ros.export import ExportError, export_onnx, main
from rfo_ros.nets.actor import Actor
from rfo_ros.runtime.metadata import REQUIRED_KEYS

SMALL = {"hidden": (32, 32)}


def make_actor(kind: str = "flow", obs_dim: int = 5, action_dim: int = 1, seed: int = 0, **kwargs) -> Actor:
    """A small random actor whose normaliser has non-trivial statistics."""
    torch.manual_seed(seed)
    if kind == "flow":
        kwargs = {"chunk": 3, "steps": 4, **kwargs}
    actor = Actor(kind, {"obs_dim": obs_dim, "action_dim": action_dim, **SMALL, **kwargs})
    actor.normalizer.update(torch.randn(256, obs_dim) * 2.0 + 0.5)
    return actor.eval()


def write_checkpoint(path, actor: Actor, task: str = "cartpole", algo: str = "rfo"):
    payload = {"task": task, "algo": algo, "actor": actor.spec(), "config": {}, "commit": "test",
               "iteration": 0, "env_steps": 0}  # fmt: skip
    save_checkpoint(path, payload)
    return path


def torch_ctrl(actor: Actor, task, obs: torch.Tensor, noise: torch.Tensor) -> np.ndarray:
    """The trainer's view: actor in [-1, 1], then the task's action map, (B, C, m) float64."""
    with torch.no_grad():
        action = actor(obs, noise)[0]
    b, c, m = action.shape
    return task.action_to_ctrl(action.reshape(b * c, m)).reshape(b, c, m).numpy()


def ort_ctrl(path, feeds: dict[str, torch.Tensor]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["action_chunk"], {n: feeds[n].numpy().astype(np.float32) for n in names})[0]


def all_ops(model: onnx.ModelProto) -> set[str]:
    """Op types in the graph and in any subgraph (If/Loop/Scan bodies)."""
    ops, graphs = set(), [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            ops.add(node.op_type)
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
            graphs += [g for a in node.attribute for g in a.graphs]
    return ops


def random_inputs(actor: Actor, batch: int, seed: int = 1, zero_noise: bool = False):
    gen = torch.Generator().manual_seed(seed)
    obs = actor.normalizer.mean + 2 * actor.normalizer.var.sqrt() * torch.randn(
        batch, actor.obs_dim, generator=gen
    )
    noise = torch.randn(batch, actor.chunk, actor.action_dim, generator=gen)
    return obs, (torch.zeros_like(noise) if zero_noise else noise)


@pytest.mark.parametrize("zero_noise", [False, True])
def test_flow_export_matches_torch_at_batch_1_and_5(tmp_path, cartpole_task, zero_noise):
    actor = make_actor()
    ckpt = write_checkpoint(tmp_path / "ckpt.pt", actor)
    report = export_onnx(ckpt, tmp_path / "policy.onnx", zero_noise=zero_noise)
    assert report.parity_max_abs_error <= 1e-5
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == (
        ["observation"] if zero_noise else ["observation", "noise"]
    )
    for batch in (1, 5):
        obs, noise = random_inputs(actor, batch, zero_noise=zero_noise)
        got = ort_ctrl(report.path, {"observation": obs, "noise": noise})
        assert got.shape == (batch, 3, 1)
        assert np.abs(got - torch_ctrl(actor, cartpole_task, obs, noise)).max() <= 1e-5


def test_graph_is_straight_line(tmp_path):
    report = export_onnx(write_checkpoint(tmp_path / "c.pt", make_actor(steps=8)), tmp_path / "p.onnx")
    ops = all_ops(onnx.load(str(report.path)))
    assert not ops & {"Loop", "If", "Scan"}
    # No shape arithmetic either: every node can stay on the GPU inside a captured CUDA graph.
    assert not ops & {"Shape", "ConstantOfShape", "Expand"}
    assert report.opset >= 17 and report.n_nodes == sum(report.op_counts.values())


def test_metadata_describes_the_contract(tmp_path, cartpole_task):
    report = export_onnx(write_checkpoint(tmp_path / "c.pt", make_actor()), tmp_path / "p.onnx")
    props = {p.key: json.loads(p.value) for p in onnx.load(str(report.path)).metadata_props}
    assert set(REQUIRED_KEYS) <= set(props)
    amap = cartpole_task.action_map()
    assert props["rfo_ros_format"] == "rfo_ros.onnx/1"
    assert props["joint_names"] == ["slider"]  # the joint the cart actuator drives, not the actuator's name
    assert props["dt"] == pytest.approx(cartpole_task.dt)
    assert (props["flow_steps"], props["flow_solver"], props["chunk"]) == (4, "euler", 3)
    assert (props["action_dim"], props["obs_dim"]) == (1, 5)
    assert (props["task"], props["algo"], props["training_commit"], props["policy_kind"]) == (
        "cartpole", "rfo", "test", "flow"
    )  # fmt: skip
    assert props["zero_noise"] is False and props["image"] is None
    assert props["normalization"]["in_graph"] is True
    assert props["obs_layout"]["size"] == 5 and props["obs_layout"]["fields"][0]["name"] == "state"
    for key in ("scale", "offset", "low", "high"):
        assert props["action_map"][key] == pytest.approx(getattr(amap, key).tolist())
    assert props["checkpoint"] == {"file": "c.pt", "iteration": 0, "env_steps": 0}
    assert props["export_time"].endswith("+00:00")


@pytest.mark.parametrize("zero_noise", [False, True])
def test_gaussian_export(tmp_path, cartpole_task, zero_noise):
    actor = make_actor("gaussian")
    ckpt = write_checkpoint(tmp_path / "g.pt", actor, algo="shac")
    report = export_onnx(ckpt, tmp_path / "g.onnx", zero_noise=zero_noise)
    assert report.parity_max_abs_error <= 1e-5
    assert (report.metadata.flow_steps, report.metadata.chunk, report.metadata.policy_kind) == (
        0,
        1,
        "gaussian",
    )
    obs, noise = random_inputs(actor, 5, zero_noise=zero_noise)
    got = ort_ctrl(report.path, {"observation": obs, "noise": noise})
    assert np.abs(got - torch_ctrl(actor, cartpole_task, obs, noise)).max() <= 1e-5


def test_steps_override_and_fixed_step_solvers(tmp_path):
    actor = make_actor(solver="rk4")
    ckpt = write_checkpoint(tmp_path / "c.pt", actor)
    k4 = export_onnx(ckpt, tmp_path / "k4.onnx")
    k8 = export_onnx(ckpt, tmp_path / "k8.onnx", steps=8)
    assert (k4.metadata.flow_steps, k8.metadata.flow_steps, k8.metadata.flow_solver) == (4, 8, "rk4")
    assert max(k4.parity_max_abs_error, k8.parity_max_abs_error) <= 1e-5
    obs, noise = random_inputs(actor, 3)
    feeds = {"observation": obs, "noise": noise}
    assert not np.allclose(ort_ctrl(k4.path, feeds), ort_ctrl(k8.path, feeds))


def test_adaptive_solver_is_refused(tmp_path):
    ckpt = write_checkpoint(tmp_path / "c.pt", make_actor(solver="dopri5"))
    with pytest.raises(ExportError, match="dopri5"):
        export_onnx(ckpt, tmp_path / "p.onnx")


def test_image_policy_has_an_image_input(tmp_path, cartpole_task):
    actor = make_actor(obs_dim=5 + 64, image_shape=(1, 8, 8))
    report = export_onnx(write_checkpoint(tmp_path / "i.pt", actor), tmp_path / "i.onnx")
    assert report.parity_max_abs_error <= 1e-5
    assert report.inputs == {
        "observation": ("batch", 5),
        "noise": ("batch", 3, 1),
        "image": ("batch", 1, 8, 8),
    }
    assert report.metadata.image.shape == (1, 8, 8) and report.metadata.obs_dim == 5
    obs, noise = random_inputs(actor, 4)
    feeds = {"observation": obs[:, :5], "noise": noise, "image": obs[:, 5:].reshape(4, 1, 8, 8)}
    assert np.abs(ort_ctrl(report.path, feeds) - torch_ctrl(actor, cartpole_task, obs, noise)).max() <= 1e-5


def test_failed_parity_check_leaves_no_file(tmp_path, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "c.pt", make_actor())
    real_reference = export.reference_actor

    def corrupted_reference(path, steps):  # the weights on disk differ from what was exported
        actor = real_reference(path, steps)
        with torch.no_grad():
            actor.policy.net[0].weight[0, 0] += 0.5
        return actor

    monkeypatch.setattr(export, "reference_actor", corrupted_reference)
    out = tmp_path / "models" / "p.onnx"
    with pytest.raises(ExportError, match="disagree"):
        export_onnx(ckpt, out)
    assert list(out.parent.iterdir()) == []  # neither the model nor its temporary file


def test_failed_export_keeps_an_existing_model(tmp_path, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "c.pt", make_actor())
    out = tmp_path / "p.onnx"
    export_onnx(ckpt, out)
    before = out.read_bytes()
    monkeypatch.setattr(export, "PARITY_ATOL", -1.0)  # nothing can pass
    with pytest.raises(ExportError):
        export_onnx(ckpt, out)
    assert out.read_bytes() == before


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "p.onnx")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="unreadable"):
        export_onnx(corrupt, tmp_path / "p.onnx")
    no_actor = tmp_path / "no_actor.pt"
    save_checkpoint(no_actor, {"task": "cartpole", "algo": "rfo", "commit": "x"})
    with pytest.raises(CheckpointError, match="actor"):
        export_onnx(no_actor, tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()


def test_checkpoint_task_mismatch_is_an_export_error(tmp_path):
    ckpt = write_checkpoint(tmp_path / "c.pt", make_actor(action_dim=2))  # cartpole has one actuator
    with pytest.raises(ExportError, match="actuators"):
        export_onnx(ckpt, tmp_path / "p.onnx")


def test_cli(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "c.pt", make_actor())
    assert main([str(ckpt), "-o", str(tmp_path / "m" / "p.onnx"), "--zero-noise", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "parity vs torch" in out and "K=6" in out and "zero_noise=True" in out
    assert main([str(tmp_path / "nope.pt"), "-o", str(tmp_path / "q.onnx")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.skipif("quadruped" not in TASKS, reason="quadruped task not registered in rfo_ros.envs.TASKS")
def test_quadruped_export_carries_the_robot_contract(tmp_path):
    task = make_task("quadruped")
    actor = make_actor(obs_dim=task.obs_dim, action_dim=task.action_dim, chunk=2, steps=2)
    report = export_onnx(write_checkpoint(tmp_path / "q.pt", actor, task="quadruped"), tmp_path / "q.onnx")
    meta = report.metadata
    assert report.parity_max_abs_error <= 1e-5
    assert meta.joint_names == tuple(task.robot_spec()["joint_names"])
    assert meta.obs_layout.size == task.obs_dim == meta.obs_dim
    assert meta.obs_layout.names[0] == "base_lin_vel"


def test_inpainting_by_hand_on_a_constant_field():
    """A flow whose field is the constant c: x_{k+1} = x_k + c/K, then each weighted entry is pulled onto
    the straight path (1 - u)·ε + u·z_c. K=2, ε=0, c=1, z_c = atanh(a_c) for a committed action a_c:
    weight 1 ends on z_c exactly; weight 0 is the plain flow (z = c); weight 1/2 by hand:
    x1 = 0.5 -> 0.5 + 0.5·(0.5·z_c - 0.5), x2 = x1 + 0.5 -> x2 + 0.5·(z_c - x2)."""
    from rfo_ros.envs.base import ActionMap
    from rfo_ros.runtime.graph import ExportModule

    actor = make_actor("flow", obs_dim=2, action_dim=1, chunk=3, steps=2)
    last = actor.policy.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(1.0)
    amap = ActionMap(
        scale=np.array([2.0]), offset=np.array([0.5]), low=np.array([-10.0]), high=np.array([10.0])
    )
    module = ExportModule(actor, amap, zero_noise=True, inpainting=True)
    assert module.input_names == ["observation", "committed", "committed_weight"]
    committed_action = 0.6
    z_c = math.atanh(committed_action)
    committed = torch.full((1, 3, 1), 0.5 + 2.0 * committed_action)  # actuator units
    weight = torch.tensor([[1.0, 0.0, 0.5]])
    with torch.no_grad():
        ctrl = module(torch.zeros(1, 2), committed, weight)[0, :, 0].numpy()
    x1 = 0.5 + 0.5 * (0.5 * z_c - 0.5)
    x2 = x1 + 0.5
    expected_z = [z_c, 1.0, x2 + 0.5 * (z_c - x2)]
    np.testing.assert_allclose(ctrl, 0.5 + 2.0 * np.tanh(expected_z), rtol=0, atol=1e-5)


def test_inpainting_export_matches_torch_and_keeps_committed_actions(tmp_path):
    from rfo_ros.runtime import load_metadata, make_policy

    actor = make_actor("flow", obs_dim=4, action_dim=1, chunk=4, steps=3)
    ckpt = write_checkpoint(tmp_path / "a.pt", actor)
    report = export_onnx(ckpt, tmp_path / "inpaint.onnx", inpainting=True)  # parity checked inside
    assert report.parity_max_abs_error <= export.PARITY_ATOL
    meta = load_metadata(tmp_path / "inpaint.onnx")
    assert meta.inpainting and meta.input_names == ("observation", "noise", "committed", "committed_weight")
    policy = make_policy(tmp_path / "inpaint.onnx", provider="cpu")
    obs, noise = np.zeros(4), np.random.default_rng(0).standard_normal((4, 1))
    plain = policy.infer(obs, noise=noise)
    committed = np.array([[0.5], [-0.5], [0.0], [0.0]])
    kept = policy.infer(
        obs, noise=noise, committed=committed, committed_weight=np.array([1.0, 1.0, 0.0, 0.0])
    )
    np.testing.assert_allclose(kept[:2], committed[:2], atol=1e-5)
    assert np.abs(kept[2:] - plain[2:]).max() < np.abs(kept[:2] - plain[:2]).max()
    with pytest.raises(ValueError, match="go together"):
        policy.infer(obs, noise=noise, committed=committed)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        policy.infer(obs, noise=noise, committed=committed, committed_weight=np.full(4, 2.0))
    plain_model = export_onnx(ckpt, tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="without --inpainting"):
        make_policy(plain_model.path, provider="cpu").infer(obs, noise=noise, committed=committed)
    with pytest.raises(ExportError, match="needs a flow policy"):
        export_onnx(
            write_checkpoint(tmp_path / "g.pt", make_actor("gaussian", obs_dim=4)),
            tmp_path / "g.onnx",
            inpainting=True,
        )
