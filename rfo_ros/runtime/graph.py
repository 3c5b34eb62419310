"""The deployable policy graph as a torch module: what export traces and ``TorchPolicy`` runs.

``ExportModule`` maps ``(observation, [noise], [image])`` to an action chunk in actuator units::

    obs      = [observation, image.flatten()]          (the layout the actor was trained on)
    obs_norm = clip((obs - mean) / sqrt(var + eps), ±clip)
    z        = fixed-step ODE solve of v_θ from x_0 = noise, K steps unrolled   (flow)
             | mean(o) + std · noise                                              (tanh-Gaussian)
    ctrl     = max(min(offset + prior + scale · tanh(z), high), low)             (Task.action_map)

where ``prior`` (C, m) is the robot's gait prior (``rfo_ros.envs.gait``) at each step of the chunk,
computed from the observation's ``gait_clock`` columns, and 0 for robots without a gait.

With ``inpainting`` (flow policies) two more inputs condition the chunk on actions already committed,
for real-time chunk execution (Black et al. 2025): ``committed`` (B, C, m) in actuator units and
``committed_weight`` (B, C) in [0, 1]. After every ODE step, ending at flow time u, each weighted entry is
pulled onto the straight path from its noise to the committed action's latent,
``x ← x + w·((1 - u)·ε + u·z_c - x)``, so weight 1 reproduces the committed action exactly and weight 0
leaves the flow alone; the velocity field sees the whole chunk, so the free steps follow the committed
ones.

Everything is straight-line tensor code: no data-dependent control flow and no shape arithmetic, so
the ONNX graph has no Loop/If/Scan/Shape nodes and a GPU runtime can capture it in a CUDA graph.

The flow's velocity MLP starts with ``Linear([features, x, emb(u)])``. Its weight is split so the
observation part is computed once per call and the time-embedding part, constant per step, folds
into a per-step bias: per ODE stage only ``W_x·x`` is recomputed. ``rfo_ros.export`` checks the
result against the unmodified torch actor on every export.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rfo_ros.envs.base import ActionMap
from rfo_ros.envs.gait import GaitPrior
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.flow import FlowPolicy, time_embedding
from rfo_ros.nets.gaussian import TanhGaussianPolicy


@dataclass(frozen=True)
class Tableau:
    """Explicit Runge-Kutta coefficients: stage times ``c``, stage weights ``a`` (lower-triangular
    rows, one per stage after the first) and output weights ``b``."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]


#: The fixed-step solvers FlowPolicy offers, as torchdiffeq defines them ("rk4" is its 3/8 rule).
TABLEAUS: dict[str, Tableau] = {
    "euler": Tableau(c=(0.0,), a=(), b=(1.0,)),
    "midpoint": Tableau(c=(0.0, 0.5), a=((0.5,),), b=(0.0, 1.0)),
    "rk4": Tableau(
        c=(0.0, 1 / 3, 2 / 3, 1.0),
        a=((1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
        b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    ),
}


def _combine(x: torch.Tensor | None, terms: list[tuple[float, torch.Tensor]]) -> torch.Tensor | None:
    """``x + Σ w·k`` skipping zero weights; ``x=None`` stands for an exact zero (zero-noise start)."""
    out = x
    for weight, k in terms:
        if weight == 0.0:
            continue
        out = weight * k if out is None else out + weight * k
    return out


class SplitVelocity(nn.Module):
    """``v_θ(x, u | o)`` of a ``FlowPolicy`` at the fixed times ``times``, first layer split in three.

    ``context(feat)`` (B, H) is computed once per call; ``forward(x, ctx, i)`` evaluates the field at
    ``times[i]`` for flat latents x (B, C·m) or ``None`` (= zeros) -> (B, C·m).
    """

    def __init__(self, policy: FlowPolicy, times: list[float]) -> None:
        super().__init__()
        w_feat, w_x, w_time, bias = (p.detach() for p in policy.first_layer_parts())
        emb = time_embedding(torch.tensor(times, dtype=w_time.dtype), policy.time_dim)  # (S, T)
        self.register_buffer("w_feat", w_feat.clone())
        self.register_buffer("w_x", w_x.clone())
        self.register_buffer("stage_bias", emb @ w_time.T + bias)  # (S, H)
        self.rest = copy.deepcopy(policy.net[1:])

    def context(self, feat: torch.Tensor) -> torch.Tensor:
        return F.linear(feat, self.w_feat)

    def forward(self, x: torch.Tensor | None, ctx: torch.Tensor, i: int) -> torch.Tensor:
        pre = ctx + self.stage_bias[i]
        if x is not None:
            pre = pre + F.linear(x, self.w_x)
        return self.rest(pre)


class UnrolledFlow(nn.Module):
    """Fixed-step solve of the flow ODE from u=0 to 1, every stage unrolled: (feat, noise) -> z (B, C, m).

    ``noise=None`` integrates from exact zeros (the zero-noise mode) without materialising them.
    """

    def __init__(self, policy: FlowPolicy, steps: int, solver: str) -> None:
        super().__init__()
        if solver not in TABLEAUS:
            raise ValueError(
                f"flow solver {solver!r} is adaptive, it cannot be unrolled; unrollable: {sorted(TABLEAUS)}"
            )
        if steps < 1:
            raise ValueError(f"flow steps must be >= 1, got {steps}")
        self.steps, self.solver, self.tableau = steps, solver, TABLEAUS[solver]
        self.chunk, self.action_dim = policy.chunk, policy.action_dim
        h = 1.0 / steps
        times = [(k + c) * h for k in range(steps) for c in self.tableau.c]
        self.velocity = SplitVelocity(policy, times)

    def forward(
        self,
        feat: torch.Tensor,
        noise: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``target``/``weight`` (B, C·m): inpaint towards latents ``target`` with per-entry ``weight``."""
        ctx = self.velocity.context(feat)
        x = None if noise is None else noise.flatten(1)
        start = x
        h, tab, stage = 1.0 / self.steps, self.tableau, 0
        for step in range(self.steps):
            ks: list[torch.Tensor] = []
            for s in range(len(tab.c)):
                row = tab.a[s - 1] if s > 0 else ()
                x_s = _combine(x, [(h * w, k) for w, k in zip(row, ks, strict=True)])
                ks.append(self.velocity(x_s, ctx, stage))
                stage += 1
            x = _combine(x, [(h * w, k) for w, k in zip(tab.b, ks, strict=True)])
            if target is not None:
                u = (step + 1) * h
                on_path = u * target if start is None else (1.0 - u) * start + u * target
                x = x + weight * (on_path - x)
        return x.reshape(-1, self.chunk, self.action_dim)


class GaussianHead(nn.Module):
    """``z = μ(feat) + σ·noise`` (B, 1, m); ``noise=None`` gives the mean."""

    def __init__(self, policy: TanhGaussianPolicy) -> None:
        super().__init__()
        self.mean_net = copy.deepcopy(policy.mean_net)
        self.register_buffer("std", policy.log_std.detach().clamp(-5.0, 2.0).exp().clone())

    def forward(self, feat: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        mean = self.mean_net(feat)[:, None, :]
        return mean if noise is None else mean + self.std * noise


class ExportModule(nn.Module):
    """``forward(*inputs)`` in the order of ``input_names`` -> ``action_chunk`` (B, C, m) float32.

    Inputs: ``observation`` (B, P) raw proprioception; ``noise`` (B, C, m) standard normal, absent in
    zero-noise mode; ``image`` (B, c, h, w) when the policy has an image, its pixels in the order the
    actor saw them flattened at the end of its observation.
    """

    def __init__(
        self,
        actor: Actor,
        action_map: ActionMap,
        zero_noise: bool = False,
        steps: int | None = None,
        inpainting: bool = False,
        gait: GaitPrior | None = None,
        clock: slice | None = None,
    ):
        super().__init__()
        if (gait is None) != (clock is None):
            raise ValueError("a gait prior needs the observation's clock columns, and only it does")
        # The robot's gait prior (rfo_ros.envs.gait), added to every command of the chunk from the
        # observation's clock: a deployment supplies the clock and nothing else.
        self.gait, self.clock = gait, clock
        policy = actor.policy
        if len(action_map.scale) != actor.action_dim:
            raise ValueError(
                f"the task's action map has {len(action_map.scale)} actuators, the actor {actor.action_dim}"
            )
        self.kind, self.zero_noise, self.inpainting = actor.kind, zero_noise, inpainting
        self.chunk, self.action_dim = actor.chunk, actor.action_dim
        self.image_shape = policy.features.image_shape
        self.obs_dim = policy.features.proprio_dim
        self.normalizer = copy.deepcopy(actor.normalizer)
        self.features = copy.deepcopy(policy.features)
        if isinstance(policy, FlowPolicy):
            self.steps, self.solver = (steps or policy.steps), policy.solver
            self.head: nn.Module = UnrolledFlow(policy, self.steps, self.solver)
        elif isinstance(policy, TanhGaussianPolicy):
            if steps is not None:
                raise ValueError("flow steps only apply to flow policies, not tanh-Gaussian ones")
            self.steps, self.solver = 0, None
            self.head = GaussianHead(policy)
        else:
            raise TypeError(f"cannot export policy type {type(policy).__name__}")
        if inpainting and not isinstance(policy, FlowPolicy):
            raise ValueError("inpainting (real-time chunk execution) needs a flow policy")
        for name in ("scale", "offset", "low", "high"):
            self.register_buffer(
                name, torch.as_tensor(np.asarray(getattr(action_map, name)), dtype=torch.float32)
            )
        scale = np.asarray(action_map.scale, np.float64)
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)  # unactuated: latent 0
        self.register_buffer("inv_scale", torch.as_tensor(inv, dtype=torch.float32))
        self.register_buffer("per_actuator", torch.ones(1, 1, self.action_dim))
        self.input_names = (
            ["observation"]
            + ([] if zero_noise else ["noise"])
            + (["image"] if self.image_shape else [])
            + (["committed", "committed_weight"] if inpainting else [])
        )
        self.eval().requires_grad_(False)

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Each input's shape at batch size ``batch``, in ``input_names`` order."""
        shapes = {
            "observation": (batch, self.obs_dim),
            "noise": (batch, self.chunk, self.action_dim),
            "committed": (batch, self.chunk, self.action_dim),
            "committed_weight": (batch, self.chunk),
        }
        if self.image_shape:
            shapes["image"] = (batch, *self.image_shape)
        return {name: shapes[name] for name in self.input_names}

    def committed_latent(self, committed: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Actuator commands (B, C, m) -> the latents (B, C·m) whose action map (about ``offset``) gives
        them back."""
        action = ((committed - offset) * self.inv_scale).clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        # atanh, written out: the ONNX exporter has no Atanh at this opset.
        return (0.5 * torch.log((1.0 + action) / (1.0 - action))).flatten(1)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.input_names, inputs, strict=True))
        obs = named["observation"]
        if self.image_shape:
            obs = torch.cat([obs, named["image"].flatten(1)], dim=1)
        feat = self.features(self.normalizer(obs))
        offset = self.offset
        if self.gait is not None:
            offset = offset + self.gait.chunk_prior(named["observation"][:, self.clock], self.chunk)
        if self.inpainting:
            weight = (named["committed_weight"][:, :, None] * self.per_actuator).flatten(1)
            z = self.head(feat, named.get("noise"), self.committed_latent(named["committed"], offset), weight)
        else:
            z = self.head(feat, named.get("noise"))
        ctrl = offset + self.scale * torch.tanh(z)
        return torch.maximum(torch.minimum(ctrl, self.high), self.low)
