"""The batched collector: trajectory contents, batching, recomputable log-probs."""

import numpy as np
import pytest
import torch

from smoothvla.errors import UserError
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.execution import ExecutionConfig
from smoothvla.rollout.fake_env import PointMassEnv, make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool

torch.set_num_threads(1)
TASK = "fake-reach/point-mass-v1"


class CountingPolicy(GaussianChunkPolicy):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.batch_sizes = []

    def act(self, obs, *, sample):
        self.batch_sizes.append(len(obs))
        return super().act(obs, sample=sample)


def test_trajectories_record_physics_chunks_and_log_probs():
    policy = CountingPolicy(chunk_size=5)
    groups = [GroupRequest(TASK, 3, 11, 4), GroupRequest(TASK, 5, 12, 4)]
    with InProcessPool(8, env_factory=make_point_mass, env_options={"max_steps": 12}) as pool:
        result = Collector(policy, pool).collect(groups, seed=0)
    trajs = result.trajectories
    assert len(trajs) == 8 and [t.group_id for t in trajs] == [0] * 4 + [1] * 4
    # one act call per round for all 8 envs: ceil(12 / 5) = 3 rounds
    assert policy.batch_sizes == [8, 8, 8]
    for t in trajs:
        T = t.num_steps + 1
        assert t.num_steps == 12 and not t.success  # the random policy does not reach the goal
        assert t.ee_pos.shape == (T, 3) and t.joint_pos.shape == (T, 7) and t.gripper.shape == (T,)
        assert t.actions.shape == (12, 7) and t.control_dt == 0.05
        assert np.flatnonzero(t.chunk_starts).tolist() == [0, 5, 10]
        assert t.log_probs.shape == (3,) and len(t.chunk_obs) == 3
        assert all(set(o["rgb"]) == {"agentview"} for o in t.chunk_obs)  # rendered for acting
        assert t.chunks.actions.shape == (3, 5, 7) and t.chunks.extras["noise"].shape == (3, 5, 7)
        # executed actions are the chunk's actions, the last chunk cut at the episode end
        np.testing.assert_allclose(t.actions[10:], t.chunks.actions[2, :2].numpy())
        # the recorded observations and chunks reproduce the sampling log-probs
        with torch.no_grad():
            again = policy.log_prob(t.chunk_obs, t.chunks)
        np.testing.assert_allclose(again.numpy(), t.log_probs, rtol=1e-5, atol=1e-4)
    # a group shares its initial state; its members differ through sampling
    assert all(np.array_equal(t.ee_pos[0], trajs[0].ee_pos[0]) for t in trajs[:4])
    assert trajs[0].chunk_obs[0]["state"].tolist() == trajs[1].chunk_obs[0]["state"].tolist()
    assert not np.array_equal(trajs[0].actions, trajs[1].actions)
    assert result.stats["env_steps"] == 96 and result.stats["chunks"] == 24


class RenderLog(PointMassEnv):
    flags: list[bool] = []

    def step(self, action, render=True):
        RenderLog.flags.append(render)
        return super().step(action, render=render)


@pytest.mark.parametrize("video", [None, "agentview"])
def test_envs_render_only_the_states_that_are_read(video):
    """Inside a chunk nobody reads the images: the env renders the chunk's last state (the
    next observation) only, and every state when a video is recorded. The episode ends
    (12 steps) inside its third chunk: that final state is not rendered either."""
    RenderLog.flags = []
    groups = [GroupRequest(TASK, 3, 11, 1, video_camera=video)]
    with InProcessPool(1, env_factory=lambda task, **kw: RenderLog(task, max_steps=12)) as pool:
        result = Collector(CountingPolicy(chunk_size=5), pool).collect(groups, seed=0)
    chunk = [False] * 4 + [True]
    assert RenderLog.flags == ([True] * 12 if video else chunk + chunk + [False, False])
    if video:
        assert result.trajectories[0].extras["frames"].shape[0] == 13


def test_execute_steps_replans_after_the_first_actions_of_each_chunk():
    policy = CountingPolicy(chunk_size=5)
    groups = [GroupRequest(TASK, 3, 11, 2)]
    with InProcessPool(2, env_factory=make_point_mass, env_options={"max_steps": 12}) as pool:
        result = Collector(policy, pool, execution=ExecutionConfig("receding", steps=2)).collect(groups, seed=0)
        with pytest.raises(UserError, match="exceed the policy's chunk size"):
            Collector(policy, pool, execution=ExecutionConfig("receding", steps=6))
    assert policy.batch_sizes == [2] * 6  # 12 steps / 2 per chunk
    for t in result.trajectories:
        assert t.num_steps == 12 and np.flatnonzero(t.chunk_starts).tolist() == list(range(0, 12, 2))
        # the executed actions are the first two of each chunk
        np.testing.assert_allclose(t.actions.reshape(6, 2, 7), t.chunks.actions[:, :2].numpy())


def test_ensemble_executes_the_weighted_mean_of_every_prediction():
    policy = CountingPolicy(chunk_size=3)
    groups = [GroupRequest(TASK, 3, 11, 2)]
    execution = ExecutionConfig("ensemble", ensemble_decay=0.5)
    with InProcessPool(2, env_factory=make_point_mass, env_options={"max_steps": 6}) as pool:
        result = Collector(policy, pool, execution=execution).collect(groups, seed=0)
    assert policy.batch_sizes == [2] * 6  # a new chunk every step
    w = np.exp(-0.5 * np.arange(3))
    for t in result.trajectories:
        c = t.chunks.actions.numpy().astype(np.float64)  # chunk i predicted at step i
        assert np.flatnonzero(t.chunk_starts).tolist() == list(range(6))
        np.testing.assert_allclose(t.actions[0], c[0, 0])
        np.testing.assert_allclose(t.actions[1], (w[0] * c[0, 1] + w[1] * c[1, 0]) / w[:2].sum())
        np.testing.assert_allclose(
            t.actions[4], (w[0] * c[2, 2] + w[1] * c[3, 1] + w[2] * c[4, 0]) / w.sum())


def test_lanes_split_the_policy_batch():
    policy = CountingPolicy(chunk_size=4)
    groups = [GroupRequest(TASK, 1, 7, 6)]
    with InProcessPool(6, env_factory=make_point_mass) as pool:
        one = Collector(policy, pool).collect(groups, seed=0)
        assert policy.batch_sizes == [6] * 4
        policy.batch_sizes.clear()
        three = Collector(policy, pool, lanes=3).collect(groups, seed=0)
        assert policy.batch_sizes == [2] * 12
    assert len(one.trajectories) == len(three.trajectories) == 6
    with pytest.raises(ValueError, match="lanes"):
        Collector(policy, pool, lanes=7)


def test_more_rollouts_than_envs_and_early_termination():
    # a policy that always pushes towards +x reaches the init-0 goal at (0.3, 0, 0) early
    policy = GaussianChunkPolicy(chunk_size=2, init_std=1e-3)
    with torch.no_grad():
        policy.mean_head.weight.zero_()
        policy.mean_head.bias.zero_()
        policy.mean_head.bias[0::7] = 1.0
    groups = [GroupRequest(TASK, 0, s, 3) for s in range(3)]
    with InProcessPool(2, env_factory=make_point_mass) as pool:
        result = Collector(policy, pool).collect(groups, seed=0)
    assert len(result.trajectories) == 9
    for t in result.trajectories:
        assert t.success and t.extras["terminated"] and t.num_steps < 16
        assert t.is_grasping[-1]


def test_empty_request_and_bad_group():
    with InProcessPool(1, env_factory=make_point_mass) as pool:
        with pytest.raises(ValueError, match="at least one"):
            Collector(GaussianChunkPolicy(), pool).collect([], seed=0)
    with pytest.raises(ValueError, match="group size"):
        GroupRequest(TASK, 0, 0, 0)
