"""Record QuadrupedWalk's outputs on fixed states (tests/data/quadruped_walk_reference.npz).

Run once at commit b0ba1c1, the last commit with the hand-written QuadrupedWalk, from that checkout:
    python scripts/record_quadruped_reference.py OUT.npz
tests/test_robot.py checks that the go1 robot file's generic legged task gives the same numbers.
"""

import sys

import numpy as np
import torch

from rfo_ros.envs import make_task
from rfo_ros.sim.autograd import SimState

task = make_task("quadruped")
rng = np.random.default_rng(7)
n = 64
task.resample(np.ones(n, dtype=bool), rng)
start = task.initial_state(n, np.random.default_rng(3))
# States around standing, some tilted, low or fast enough to terminate.
qpos = start.qpos.clone()
qpos[:, 7:] += torch.from_numpy(rng.normal(0, 0.3, (n, 12)))
qpos[:, 2] += torch.from_numpy(rng.uniform(-0.2, 0.05, n))
quat = torch.from_numpy(rng.normal(0, 1, (n, 4)) * [1, 0.4, 0.4, 0.4] + [3, 0, 0, 0])
qpos[:, 3:7] = quat / quat.norm(dim=1, keepdim=True)
qvel = torch.from_numpy(rng.normal(0, 1.0, (n, 18)))
state = SimState(qpos, qvel, torch.zeros(n, 0, dtype=torch.float64))
next_qpos = qpos + 0.01 * torch.from_numpy(rng.normal(0, 1, qpos.shape))
next_qpos[:, 3:7] /= next_qpos[:, 3:7].norm(dim=1, keepdim=True)
next_state = SimState(next_qpos, qvel + torch.from_numpy(rng.normal(0, 0.3, qvel.shape)), state.act)
action = torch.from_numpy(rng.uniform(-1.2, 1.2, (n, 12)))
terms = task.reward_terms(state, action, next_state)
out = {
    "start_qpos": start.qpos.numpy(),
    "start_qvel": start.qvel.numpy(),
    "command": task.command.numpy(),
    "qpos": qpos.numpy(),
    "qvel": qvel.numpy(),
    "next_qpos": next_qpos.numpy(),
    "next_qvel": next_state.qvel.numpy(),
    "action": action.numpy(),
    "obs": task.observe(state, action).numpy(),
    "reward": task.reward(state, action, next_state).numpy(),
    "terminated": task.terminated(next_state).numpy(),
    "ctrl": task.action_to_ctrl(action).numpy(),
    "forward_speed": task.forward_speed(next_state).numpy(),
    "dt": np.array(task.dt),
    "obs_dim": np.array(task.obs_dim),
}
out.update({f"term_{k}": v.numpy() for k, v in terms.items()})
np.savez_compressed(sys.argv[1], **out)
print({k: v.shape for k, v in out.items()})
