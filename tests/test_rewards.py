"""Rewards against hand-computed values."""

import logging

import numpy as np
import pytest

from smoothvla.rewards import (
    RewardConfig,
    binary_reward,
    jerk_scale_from_trajectories,
    make_reward,
    random_reward,
    smooth_reward,
    staged_reward,
)
from smoothvla.rollout import Trajectory


def cubic_traj(a=0.5, success=True, grasp=None, n=20, dt=0.05):
    t = np.arange(n) * dt
    ee = np.stack([a * t**3, 0 * t, 0 * t], 1)  # jerk 6a everywhere
    return Trajectory(ee_pos=ee, actions=np.zeros((n - 1, 7)), control_dt=dt, success=success,
                      is_grasping=grasp)


def test_binary():
    assert binary_reward(cubic_traj(success=True)) == (1.0, {"success": 1.0})
    assert binary_reward(cubic_traj(success=False))[0] == 0.0


def test_smooth_reward_hand_computed():
    # mean jerk = 6a = 3.0; with jerk_scale 2 and lam 0.2: 1 - 0.2 * 1.5 = 0.7
    reward, terms = smooth_reward(cubic_traj(a=0.5), lam=0.2, jerk_scale=2.0)
    assert reward == pytest.approx(0.7)
    assert terms["mean_jerk"] == pytest.approx(3.0)
    assert terms["jerk_normalized"] == pytest.approx(1.5)
    assert terms["penalty"] == pytest.approx(0.3)
    assert terms["clipped"] == 0.0
    fail, fail_terms = smooth_reward(cubic_traj(a=0.5, success=False), lam=0.2, jerk_scale=2.0)
    assert fail == 0.0 and fail_terms["mean_jerk"] == pytest.approx(3.0)


def test_smooth_reward_clips_at_zero_and_logs(caplog):
    with caplog.at_level(logging.INFO, logger="smoothvla.rewards"):
        reward, terms = smooth_reward(cubic_traj(a=5.0), lam=0.2, jerk_scale=1.0)  # 1 - 6 < 0
    assert reward == 0.0 and terms["clipped"] == 1.0
    assert "clipped" in caplog.text


def test_staged_reward():
    held_to_end = np.array([0] * 10 + [1] * 10, bool)
    dropped = np.array([0] * 5 + [1] * 5 + [0] * 10, bool)
    assert staged_reward(cubic_traj(success=True, grasp=dropped))[0] == 1.0
    assert staged_reward(cubic_traj(success=False, grasp=held_to_end))[0] == pytest.approx(0.1)
    assert staged_reward(cubic_traj(success=False, grasp=dropped))[0] == 0.0
    with pytest.raises(ValueError, match="is_grasping"):
        staged_reward(cubic_traj(success=False))


def test_random_reward_is_binary_plus_zero_mean_noise():
    rng = np.random.default_rng(0)
    values = np.array([random_reward(cubic_traj(success=True), rng, 0.1)[0] for _ in range(4000)])
    assert values.mean() == pytest.approx(1.0, abs=0.01)
    assert values.std() == pytest.approx(0.1, rel=0.05)


def test_jerk_scale_makes_demos_one():
    demos = [cubic_traj(a=0.5).ee_pos, cubic_traj(a=1.0).ee_pos]  # mean jerks 3 and 6
    scale = jerk_scale_from_trajectories(demos, 0.05)
    assert scale == pytest.approx(4.5)
    with pytest.raises(ValueError, match="at least one"):
        jerk_scale_from_trajectories([], 0.05)


def test_make_reward_and_bad_config():
    fn = make_reward(RewardConfig(name="smooth", lam=0.2, jerk_scale=2.0))
    assert fn(cubic_traj(a=0.5))[0] == pytest.approx(0.7)
    same_a = make_reward(RewardConfig(name="random", seed=3))(cubic_traj())[0]
    same_b = make_reward(RewardConfig(name="random", seed=3))(cubic_traj())[0]
    assert same_a == same_b
    with pytest.raises(ValueError, match="unknown reward 'jerky'"):
        RewardConfig(name="jerky")
    with pytest.raises(ValueError, match="jerk_scale"):
        RewardConfig(jerk_scale=0)
    with pytest.raises(ValueError, match="lam"):
        smooth_reward(cubic_traj(), lam=-1)


def test_trajectory_validation():
    with pytest.raises(ValueError, match=r"ee_pos must have shape \(T, 3\)"):
        Trajectory(ee_pos=np.zeros((5, 2)), actions=np.zeros((4, 7)), control_dt=0.05, success=True)
    with pytest.raises(ValueError, match="control_dt"):
        Trajectory(ee_pos=np.zeros((5, 3)), actions=np.zeros((4, 7)), control_dt=0, success=True)
    with pytest.raises(ValueError, match="is_grasping has 3 rows"):
        Trajectory(ee_pos=np.zeros((5, 3)), actions=np.zeros((4, 7)), control_dt=0.05,
                   success=True, is_grasping=np.zeros(3))
