"""Bad input to the simulator layer fails early with a message that says what was wrong."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rfo_ros.envs import TASKS, VecEnv, make_task
from rfo_ros.sim import BatchedSim, SimState, load_model, mj_step_autograd
from rfo_ros.sim.tangent import TangentMap


def test_missing_world_names_path_and_known_worlds(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_model("no_such_world")
    message = str(info.value)
    assert "no_such_world.xml" in message and "cartpole" in message

    missing = tmp_path / "missing.xml"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_model(missing)


@pytest.mark.parametrize(
    "text",
    [
        "<mujoco><worldbody><body></worldbody></mujoco>",  # not well-formed XML
        '<mujoco><worldbody><geom type="sphere" size="0.1" wings="2"/></worldbody></mujoco>',  # bad attribute
    ],
    ids=["malformed_xml", "unknown_attribute"],
)
def test_invalid_mjcf_names_the_file(tmp_path, text):
    path = tmp_path / "broken.xml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_model(path)


def test_unknown_task_lists_known_tasks():
    with pytest.raises(KeyError) as info:
        make_task("cartpoel")
    message = str(info.value)
    assert "cartpoel" in message
    assert all(name in message for name in TASKS)


@pytest.fixture
def env(cartpole_task):
    env = VecEnv(cartpole_task, 2, threads=1)
    yield env
    env.close()


@pytest.mark.parametrize("shape", [(2,), (3, 1), (2, 2), (1, 2, 1)])
def test_vec_env_action_of_wrong_shape(env, shape):
    with pytest.raises(ValueError) as info:
        env.step(torch.zeros(shape))
    assert "(2, 1)" in str(info.value) and str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_vec_env_action_non_finite(env, bad):
    action = torch.zeros(2, 1)
    action[1, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(action)
    assert env.stats.env_steps == 0, "a rejected action must not step the envs"


@pytest.mark.parametrize(
    ("field", "shape"),
    [("ctrl", (2,)), ("ctrl", (3, 1)), ("ctrl", (2, 2)), ("qpos", (2, 1)), ("qvel", (1, 2))],
)
def test_mj_step_autograd_wrong_shapes(cartpole_task, field, shape):
    sim, tmap = BatchedSim(cartpole_task.model, 2, threads=1), TangentMap(cartpole_task.model)
    state = cartpole_task.initial_state(2, np.random.default_rng(0))
    ctrl = torch.zeros(2, 1)
    if field == "ctrl":
        ctrl = torch.zeros(shape)
    else:
        state = SimState(**{**vars(state), field: torch.zeros(shape, dtype=torch.float64)})
    with pytest.raises(ValueError) as info:
        mj_step_autograd(sim, tmap, state, ctrl)
    message = str(info.value)
    assert field in message and str(tuple(shape)) in message
    sim.close()


def test_batched_sim_rejects_no_envs(cartpole_task):
    with pytest.raises(ValueError, match="num_envs"):
        BatchedSim(cartpole_task.model, 0)
