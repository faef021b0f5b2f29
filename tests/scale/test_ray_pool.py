"""RayPool: same trajectories as ProcessPool; killed and hung actors are replaced and counted."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool, ProcessPool

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'smoothvla[ray]')")
from smoothvla.rollout.ray_pool import RayPool, make_pool

torch.set_num_threads(1)
TASK = "fake-reach/point-mass-v1"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray session for the module (ray.init costs seconds); shut down after."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _groups(init_ids, size=2):
    return [GroupRequest(TASK, i, 100 + i, size) for i in init_ids]


def _same(a, b):
    return (
        (a.task_id, a.init_id, a.seed, a.group_id) == (b.task_id, b.init_id, b.seed, b.group_id)
        and np.array_equal(a.ee_pos, b.ee_pos)
        and np.array_equal(a.joint_pos, b.joint_pos)
        and np.array_equal(a.actions, b.actions)
        and np.array_equal(a.log_probs, b.log_probs)
        and np.array_equal(a.chunk_starts, b.chunk_starts)
        and a.success == b.success
    )


def test_ray_and_process_pools_give_the_same_trajectories():
    policy = GaussianChunkPolicy(seed=3)
    groups = _groups([0, 1, 2], size=3)
    with ProcessPool(4, num_workers=2, env_factory=make_point_mass, timeout_s=60) as pool:
        local = Collector(policy, pool).collect(groups, seed=7)
        local_lanes = Collector(policy, pool, lanes=2).collect(groups, seed=7)
    with RayPool(4, num_workers=2, env_factory=make_point_mass, timeout_s=60) as pool:
        assert not pool.owns_ray  # the fixture's session stays up
        remote = Collector(policy, pool).collect(groups, seed=7)
        again = Collector(policy, pool).collect(groups, seed=8)
        # lanes (acting on one block of envs while the other simulates) use submit/result
        remote_lanes = Collector(policy, pool, lanes=2).collect(groups, seed=7)
    assert len(remote_lanes.trajectories) == 9
    assert all(_same(a, b) for a, b in zip(local_lanes.trajectories, remote_lanes.trajectories))
    assert len(local.trajectories) == len(remote.trajectories) == 9
    assert all(_same(a, b) for a, b in zip(local.trajectories, remote.trajectories))
    assert not any(_same(a, b) for a, b in zip(local.trajectories, again.trajectories))
    assert remote.stats["env_steps"] == local.stats["env_steps"]
    # arrays arrive writable, as through ProcessPool's pipes
    assert remote.trajectories[0].chunk_obs[1]["state"].flags.writeable


def test_an_actor_killed_mid_rollout_is_replaced_and_its_episodes_counted():
    policy = GaussianChunkPolicy()
    options = {"step_sleep_s": 0.03}
    with RayPool(4, num_workers=2, env_factory=make_point_mass, env_options=options, timeout_s=60) as pool:
        victim = pool.worker_pids[0]
        # 8 episodes of 16 steps, 2 envs per actor: at least 4 rounds of ~0.25 s each
        killer = threading.Timer(0.4, os.kill, args=(victim, signal.SIGKILL))
        killer.start()
        try:
            result = Collector(policy, pool).collect(_groups([0, 1, 2, 3]), seed=0)
        finally:
            killer.cancel()
        assert result.stats["dropped_crash"] >= 1
        assert result.stats["episodes"] + result.stats["dropped"] == 8
        assert pool.restarts == 1 and pool.worker_pids[0] != victim
        assert any("died" in e for e in result.errors)
        # the replacement serves the next collection; ray.kill is another way to lose one
        ray.kill(pool.actors[1], no_restart=True)
        after = Collector(policy, pool, lanes=2).collect(_groups([0, 1]), seed=1)
        assert after.stats["dropped_crash"] == 2 and pool.restarts == 2
        again = Collector(policy, pool).collect(_groups([0, 1]), seed=1)
        assert again.stats["episodes"] == 4 and again.stats.get("dropped", 0) == 0


def test_a_hung_actor_times_out_and_is_replaced():
    policy = GaussianChunkPolicy()
    options = {"hang_on_init_id": 1}
    with RayPool(2, num_workers=2, env_factory=make_point_mass, env_options=options, timeout_s=1.0) as pool:
        start = time.perf_counter()
        result = Collector(policy, pool).collect(_groups([0, 1, 2], size=2), seed=0)
        assert time.perf_counter() - start < 30
        assert result.stats["dropped_timeout"] == 2  # both members of the init-1 group hang
        assert result.stats["episodes"] == 4
        assert pool.restarts == 2


def test_make_pool_builds_each_backend_and_rejects_bad_input():
    with make_pool("local", 2, env_factory=make_point_mass) as pool:
        assert isinstance(pool, InProcessPool)
    with make_pool("ray", 2, num_workers=1, env_factory=make_point_mass) as pool:
        assert isinstance(pool, RayPool) and len(pool.actors) == 1
    with pytest.raises(ValueError, match="unknown pool backend"):
        make_pool("slurm", 2)
    with pytest.raises(ValueError, match="only used by the ray backend"):
        make_pool("process", 2, ray_address="auto")
    with pytest.raises(ValueError, match="num_envs"):
        RayPool(0)
    with pytest.raises(ValueError, match="exceed the cluster"):
        RayPool(4, num_workers=4, env_factory=make_point_mass)  # 4 x 1 CPU on a 2-CPU Ray
