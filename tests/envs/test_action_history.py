"""Every env built by `make` carries the last executed actions in its observation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from smoothvla.envs import TaskEnv, make
from smoothvla.envs.base import ACTION_HISTORY, ActionHistory
from smoothvla.rollout.fake_env import PointMassEnv

OBJECT_TASK = "tabletop-object/pick-ketchup-place-basket-v1"


def test_tabletop_observation_carries_the_executed_actions():
    env = make(OBJECT_TASK, cameras=(), action_history=3)
    try:
        assert isinstance(env, TaskEnv) and env.control_dt == 0.05 and env.max_steps == 280
        obs, _ = env.reset(seed=0, init_id=0)
        assert obs["prev_actions"].dtype == np.float32
        assert np.array_equal(obs["prev_actions"], np.zeros((3, 7)))
        a1 = np.array([0.1, 0, 0, 0, 0, 0, -1.0])
        a2 = np.array([2.0, -0.2, 0, 0, 0, 0.3, 1.0])  # executed clipped to [-1, 1]
        obs, *_ = env.step(a1)
        assert np.allclose(obs["prev_actions"], [np.zeros(7), np.zeros(7), a1])
        obs, *_ = env.step(a2)
        assert np.allclose(obs["prev_actions"], [np.zeros(7), a1, np.clip(a2, -1, 1)])
        assert "proprio" in obs and obs["proprio"].shape == (8,)
        obs, _ = env.reset(seed=0, init_id=1)
        assert not obs["prev_actions"].any()  # forgotten at reset
    finally:
        env.close()
    assert make(OBJECT_TASK, cameras=()).reset(seed=0)[0]["prev_actions"].shape == (ACTION_HISTORY, 7)


def test_wrapper_keeps_the_oldest_first_window_and_the_env_interface():
    env = ActionHistory(PointMassEnv(), 2)
    obs, _ = env.reset(seed=0)
    actions = [np.full(7, v) for v in (0.1, 0.2, 0.3)]
    for a in actions:
        obs, *_ = env.step(a)
    assert np.allclose(obs["prev_actions"], actions[1:])
    assert env.task.task_id == "fake-reach/point-mass-v1" and env.unwrapped.max_steps == 16
    copy = pickle.loads(pickle.dumps(env))  # process pools ship envs and factories
    assert np.allclose(copy.history, env.history)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="action_history"):
        ActionHistory(PointMassEnv(), 0)
