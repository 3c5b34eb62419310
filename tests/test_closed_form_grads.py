"""The hand-written gradients of the training loop's per-step maths against torch's autograd.

``rotation_grad`` (the trunk's body-frame rotation) and ``walk_reward`` (the legged walk's reward) run in
numpy inside one autograd node each; autograd of the same formulas on torch tensors is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rfo_ros.envs import legged_obs as lo
from rfo_ros.envs import make_task, walk_reward
from rfo_ros.envs.rotation_grad import can_rotate, quat_rotate_inverse_cpu
from rfo_ros.sim.autograd import SimState


def _reference_rotation(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``R(q)ᵀ v`` through autograd: the formula ``quat_rotate_inverse`` falls back to."""
    w, u = q[:, :1], q[:, 1:]
    t = 2.0 * torch.linalg.cross(u, v, dim=-1)
    return v - w * t + torch.linalg.cross(u, t, dim=-1)


def _vjps(f, inputs: list[torch.Tensor], upstream: torch.Tensor) -> list[np.ndarray]:
    leaves = [x.clone().requires_grad_() for x in inputs]
    out = f(*leaves)
    grads = torch.autograd.grad(out, leaves, upstream, allow_unused=True)
    return [np.zeros(x.shape) if g is None else g.numpy() for x, g in zip(leaves, grads, strict=True)]


def test_rotation_node_matches_autograd_of_the_formula():
    rng = np.random.default_rng(0)
    # Not unit quaternions: the node differentiates the formula, as autograd does, whatever the norm.
    q = torch.from_numpy(rng.normal(size=(9, 4)))
    v = torch.from_numpy(rng.normal(size=(9, 3)))
    upstream = torch.from_numpy(rng.normal(size=(9, 3)))
    assert can_rotate(q, v)
    np.testing.assert_allclose(quat_rotate_inverse_cpu(q, v).numpy(), _reference_rotation(q, v).numpy(),
                               rtol=1e-13, atol=1e-13)  # fmt: skip
    fast = _vjps(quat_rotate_inverse_cpu, [q, v], upstream)
    slow = _vjps(_reference_rotation, [q, v], upstream)
    for got, want, name in zip(fast, slow, ("quaternion", "vector"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
    # Only what is asked for: a constant vector (projected gravity) gets no gradient.
    leaf = q.clone().requires_grad_()
    quat_rotate_inverse_cpu(leaf, v).sum().backward()
    assert leaf.grad is not None and leaf.grad.shape == (9, 4)


def test_quat_rotate_inverse_takes_the_node_only_where_it_applies():
    rng = np.random.default_rng(1)
    q, v = torch.from_numpy(rng.normal(size=(4, 4))), torch.from_numpy(rng.normal(size=(4, 3)))
    node = lo.quat_rotate_inverse(q.requires_grad_(), v)
    assert type(node.grad_fn).__name__ == "_QuatRotateInverseBackward"  # one node
    # float32, broadcasting and unbatched inputs keep the torch formula, with the same values.
    q = q.detach()
    cases = ((q.float(), v.float(), q, v), (q, v[0], q, v[0].expand(4, 3)), (q[0], v[0], q[:1], v[:1]))
    for qq, vv, q_ref, v_ref in cases:
        assert not can_rotate(qq, vv)
        got = lo.quat_rotate_inverse(qq, vv).reshape(-1, 3).double().numpy()
        np.testing.assert_allclose(got, _reference_rotation(q_ref, v_ref).numpy(), atol=1e-6)


def _inputs(n: int, rng: np.random.Generator, band: tuple[float, float], limit: np.ndarray) -> dict:
    """Every reward input, with heights below, inside and above the band and torques on both sides of
    their limit."""
    low, high = band
    m = len(limit)
    height = np.concatenate([rng.uniform(low - 0.1, high + 0.1, n - 3), [low - 0.05, (low + high) / 2,
                                                                          high + 0.05]])  # fmt: skip
    return {
        "command": rng.uniform(-1, 1.5, (n, 3)),
        "height": height,
        "lin_vel": rng.normal(0, 0.7, (n, 3)),
        "ang_vel": rng.normal(0, 0.7, (n, 3)),
        "gravity": rng.normal(0, 0.3, (n, 3)),
        "joint_vel": rng.normal(0, 3, (n, m)),
        "target": rng.normal(0, 1.0, (n, m)),
        "joint_pos": rng.normal(0, 0.5, (n, m)),
        "joint_vel_before": rng.normal(0, 3, (n, m)),
    }


@pytest.mark.parametrize("zeroed", [(), ("track_yaw_rate", "height", "torque")])
def test_walk_reward_node_matches_autograd_of_its_terms(zeroed):
    task = make_task("legged", robot="config/robots/go1_gait.yaml")
    spec = task._reward_spec
    weights = {**spec.weights, **dict.fromkeys(zeroed, 0.0)}
    spec = walk_reward.WalkRewardSpec(**{**spec.__dict__, "weights": weights})
    rng = np.random.default_rng(2)
    x = {k: torch.from_numpy(v) for k, v in _inputs(40, rng, spec.height_band, spec.torque_limit).items()}
    tau = walk_reward.raw_torque(spec, *(x[k].numpy() for k in ("target", "joint_pos", "joint_vel_before")))
    assert (np.abs(tau) > spec.torque_limit).any() and (np.abs(tau) < spec.torque_limit).any()
    names = walk_reward.INPUTS
    tensors = spec.as_tensors()

    def fast(*args):
        return walk_reward.walk_reward(spec, dict(zip(names, args, strict=True)))

    def slow(*args):
        return sum(walk_reward.reward_terms(tensors, dict(zip(names, args, strict=True))).values())

    args = [x[k] for k in names]
    np.testing.assert_allclose(fast(*args).numpy(), slow(*args).detach().numpy(), rtol=1e-13, atol=1e-13)
    upstream = torch.from_numpy(rng.normal(size=40))
    for got, want, name in zip(_vjps(fast, args, upstream), _vjps(slow, args, upstream), names, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
        if name == "height" and "height" not in zeroed:
            assert np.count_nonzero(got) == np.count_nonzero(want) > 0  # outside the band only


def test_task_reward_is_the_sum_of_its_terms_with_the_same_gradient():
    """Through the task (``reward_inputs``: rotations, indexing, the gait prior) on states in contact."""
    task = make_task("legged", robot="config/robots/go1_gait.yaml")
    n, rng = 6, np.random.default_rng(3)
    task.resample(np.ones(n, dtype=bool), rng)
    start = task.initial_state(n, rng)
    qpos = start.qpos.clone()
    qpos[:, 3:7] = torch.from_numpy(rng.normal(size=(n, 4)))
    qpos[:, 3:7] /= qpos[:, 3:7].norm(dim=1, keepdim=True)
    qvel = torch.from_numpy(rng.normal(0, 0.5, start.qvel.shape))
    action = torch.from_numpy(rng.uniform(-1, 1, (n, task.action_dim)))
    nxt_qpos, nxt_qvel = qpos + 0.01 * torch.from_numpy(rng.normal(size=qpos.shape)), qvel * 1.1

    def reward(fn, *leaves):
        before = SimState(leaves[0], leaves[1], start.act)
        after = SimState(leaves[3], leaves[4], start.act)
        out = fn(before, leaves[2], after)
        return out if isinstance(out, torch.Tensor) else sum(out.values())

    args = [qpos, qvel, action, nxt_qpos, nxt_qvel]
    upstream = torch.from_numpy(rng.normal(size=n))
    fast = _vjps(lambda *a: reward(task.reward, *a), args, upstream)
    slow = _vjps(lambda *a: reward(task.reward_terms, *a), args, upstream)
    for got, want, name in zip(fast, slow, ("qpos", "qvel", "action", "next qpos", "next qvel"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12, err_msg=name)
    assert np.abs(fast[2]).sum() > 0 and np.abs(fast[3]).sum() > 0  # the action and the state reach it


def test_walk_reward_refuses_tensors_off_the_cpu():
    task = make_task("legged", robot="config/robots/go1_gait.yaml")
    x = {k: torch.zeros(2, 3) for k in walk_reward.INPUTS}
    x = {k: v.to("meta") for k, v in x.items()}
    with pytest.raises(ValueError, match="CPU tensors"):
        walk_reward.walk_reward(task._reward_spec, x)
