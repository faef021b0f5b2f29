"""Normalizer: hand-computed statistics, round trips, and refusing to run without them."""

import math

import numpy as np
import pytest
import torch

from policy_helpers import TINY, make_obs
from smoothvla.policies import CompactVLA, DemoBatch, MissingStatisticsError, Normalizer, VLAConfig


def test_statistics_by_hand():
    actions = np.zeros((101, 7))
    actions[:, 0] = np.arange(101)  # percentiles 1 and 99 of 0..100 are 1 and 99
    actions[:, 1] = 0.5  # constant: unit half-range around the value
    proprio = np.tile(np.array([1.0, 3.0]), (50, 4))
    proprio[::2] = np.tile(np.array([3.0, 5.0]), (25, 4))
    norm = Normalizer.from_arrays(actions, proprio)
    assert norm.action_low[0] == pytest.approx(1.0) and norm.action_high[0] == pytest.approx(99.0)
    assert (norm.action_low[1], norm.action_high[1]) == pytest.approx((-0.5, 1.5))
    assert norm.proprio_mean[:2] == pytest.approx([2.0, 4.0])
    assert norm.proprio_std[:2] == pytest.approx([1.0, 1.0])
    a = torch.tensor([[1.0, 0.5, 0, 0, 0, 0, 0], [99.0, 1.5, 0, 0, 0, 0, 0]])
    x = norm.normalize_actions(a)
    assert x[:, 0].tolist() == pytest.approx([-1.0, 1.0]) and x[:, 1].tolist() == pytest.approx([0.0, 1.0])
    torch.testing.assert_close(norm.denormalize_actions(x), a)
    assert Normalizer.from_dict(norm.to_dict()).to_dict() == norm.to_dict()


def test_bad_statistics():
    with pytest.raises(ValueError, match="N > 0"):
        Normalizer.from_arrays(np.zeros((0, 7)), np.zeros((0, 8)))
    with pytest.raises(ValueError, match="NaN"):
        Normalizer([0.0, np.nan], [1.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="action_high must be > action_low"):
        Normalizer([0.0], [0.0], [0.0], [1.0])
    with pytest.raises(MissingStatisticsError, match="proprio_std"):
        Normalizer.from_dict({"action_low": [0], "action_high": [1], "proprio_mean": [0]})


def test_policy_refuses_to_run_without_statistics():
    policy = CompactVLA(VLAConfig(**TINY))
    obs = make_obs(1)
    with pytest.raises(MissingStatisticsError, match="no normalizer statistics"):
        policy.act(obs, sample=False)
    with pytest.raises(MissingStatisticsError):
        policy.sft_loss(DemoBatch(torch.zeros(1, 4, 7), obs=obs))
    with pytest.raises(MissingStatisticsError):
        policy.save("/nonexistent/never-written")


def test_rot6d_is_continuous_across_the_axis_angle_flip():
    from smoothvla.policies.vla import axis_angle_to_rot6d

    r = torch.tensor([[math.pi, 0, 0], [-math.pi, 0, 0], [0.0, 0, 0], [0, 0, math.pi / 2]])
    out = axis_angle_to_rot6d(r)
    torch.testing.assert_close(out[0], out[1], atol=1e-6, rtol=0)
    # Rotation by pi about x: columns (1,0,0), (0,-1,0). Identity: (1,0,0), (0,1,0).
    torch.testing.assert_close(out[0], torch.tensor([1.0, 0, 0, 0, -1, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[2], torch.tensor([1.0, 0, 0, 0, 1, 0]))
    # pi/2 about z: x -> y, y -> -x.
    torch.testing.assert_close(out[3], torch.tensor([0.0, 1, 0, -1, 0, 0]), atol=1e-6, rtol=0)


def test_canonical_proprio_makes_gripper_values_positive():
    from smoothvla.policies.vla import canonical_proprio

    raw = np.array([[1.0, -2, 3, -3.1, 0, 0, 0.04, -0.04]])
    out = canonical_proprio(raw)
    assert out.tolist() == [[1.0, -2, 3, -3.1, 0, 0, 0.04, 0.04]] and raw[0, 7] == -0.04
    torch.testing.assert_close(canonical_proprio(torch.tensor(raw)), torch.tensor(out))
