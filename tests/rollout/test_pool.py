"""Worker pools: same results as in-process, crashed and hung workers are replaced."""

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
from smoothvla.rollout.pool import Failure, InProcessPool, ProcessPool, ResetRequest, make_pool

torch.set_num_threads(1)
TASK = "fake-reach/point-mass-v1"


def _groups(init_ids, size=2):
    return [GroupRequest(TASK, i, 100 + i, size) for i in init_ids]


def _same(a, b):
    return (
        a.task_id == b.task_id
        and a.init_id == b.init_id
        and np.array_equal(a.ee_pos, b.ee_pos)
        and np.array_equal(a.actions, b.actions)
        and np.array_equal(a.log_probs, b.log_probs)
        and np.array_equal(a.chunk_starts, b.chunk_starts)
    )


def test_process_and_inprocess_backends_give_the_same_trajectories():
    policy = GaussianChunkPolicy(seed=3)
    groups = _groups([0, 1, 2], size=3)
    with InProcessPool(4, env_factory=make_point_mass) as pool:
        local = Collector(policy, pool).collect(groups, seed=7)
    with ProcessPool(4, num_workers=2, env_factory=make_point_mass, timeout_s=30) as pool:
        remote = Collector(policy, pool).collect(groups, seed=7)
        again = Collector(policy, pool).collect(groups, seed=8)
    assert len(local.trajectories) == len(remote.trajectories) == 9
    assert all(_same(a, b) for a, b in zip(local.trajectories, remote.trajectories))
    assert not any(_same(a, b) for a, b in zip(local.trajectories, again.trajectories))
    for key in ("sim_s", "policy_s", "transfer_s", "wall_s"):
        assert remote.stats[key] >= 0.0


@pytest.mark.parametrize("workers", [2, 1])
def test_lanes_overlap_without_changing_results(workers):
    # two lanes take turns; with one worker both lanes queue on it (one call in flight per worker)
    policy = GaussianChunkPolicy(seed=4)
    groups = _groups([0, 1, 2], size=4)
    with InProcessPool(8, env_factory=make_point_mass) as pool:
        local = Collector(policy, pool, lanes=2).collect(groups, seed=3)
    with ProcessPool(8, num_workers=workers, env_factory=make_point_mass, timeout_s=30) as pool:
        remote = Collector(policy, pool, lanes=2).collect(groups, seed=3)
    assert len(local.trajectories) == len(remote.trajectories) == 12
    assert all(_same(a, b) for a, b in zip(local.trajectories, remote.trajectories))
    assert remote.stats["dropped"] == 0 and remote.stats["policy_calls"] > 8


def test_a_killed_worker_is_replaced_and_collection_goes_on():
    policy = GaussianChunkPolicy()
    options = {"step_sleep_s": 0.03}
    with ProcessPool(
        4, num_workers=2, env_factory=make_point_mass, env_options=options, timeout_s=30
    ) as pool:
        victim = pool.worker_pids[0]
        # 8 episodes of 16 steps, 2 envs per worker: at least 4 rounds of ~0.25 s each
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
        # the replacement worker serves the next collection
        after = Collector(policy, pool).collect(_groups([0, 1]), seed=1)
        assert after.stats["episodes"] == 4 and after.stats["dropped"] == 0


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_hung_worker_times_out_and_is_replaced(lanes):
    policy = GaussianChunkPolicy()
    options = {"hang_on_init_id": 1}
    with ProcessPool(
        2, num_workers=2, env_factory=make_point_mass, env_options=options, timeout_s=1.0
    ) as pool:
        start = time.perf_counter()
        result = Collector(policy, pool, lanes=lanes).collect(_groups([0, 1, 2], size=2), seed=0)
        assert time.perf_counter() - start < 20
        assert result.stats["dropped_timeout"] == 2  # both members of the init-1 group hang
        assert result.stats["worker_restarts"] == 2 and result.stats["dropped_crash"] == 0
        assert pool.restarts == 2
        assert sorted({t.init_id for t in result.trajectories}) == [0, 2]
        assert len(result.trajectories) == 4


def test_env_errors_drop_only_that_episode():
    policy = GaussianChunkPolicy()
    with make_pool(
        "inprocess", 2, env_factory=make_point_mass, env_options={"raise_on_init_id": 0}
    ) as pool:
        result = Collector(policy, pool).collect(_groups([0, 1]), seed=0)
    assert result.stats["dropped_error"] == 2
    assert "injected fault" in result.errors[0]
    assert [t.init_id for t in result.trajectories] == [1, 1]


def test_unknown_task_is_a_failure_with_the_message():
    def factory(task_id, **options):
        raise ValueError(f"unknown task id {task_id!r}")

    with InProcessPool(1, env_factory=factory) as pool:
        reply = pool.reset({0: ResetRequest("nope/x-v1", 0, 0)})[0]
    assert isinstance(reply, Failure) and "unknown task id 'nope/x-v1'" in reply.message


def test_bad_pool_arguments():
    with pytest.raises(ValueError, match="picklable"):
        ProcessPool(1, env_factory=lambda task_id, **kw: None)
    with pytest.raises(ValueError, match="num_envs"):
        InProcessPool(0)
    with pytest.raises(ValueError, match="backend"):
        make_pool("ray-cluster", 1)
    with InProcessPool(1, env_factory=make_point_mass) as pool:
        with pytest.raises(ValueError, match="out of range"):
            pool.reset({3: ResetRequest(TASK, 0, 0)})


def test_rendering_time_is_counted_apart_from_physics():
    # the rollout time split (trainer's time/render_s) rests on envs counting their rendering
    from smoothvla.algorithms.trainer import time_split
    from smoothvla.policies.base import ActionChunk

    class Zero:
        chunk_size = 4

        def reset(self):
            pass

        def act(self, obs, *, sample):
            return ActionChunk(torch.zeros(len(obs), 4, 7), torch.zeros(len(obs)))

    groups = [GroupRequest("tabletop-object/pick-ketchup-place-basket-v1", 0, 1, 2)]
    for cameras, rendered in ((("agentview",), True), ((), False)):
        opts = {"cameras": cameras, "image_size": 32}
        with ProcessPool(2, num_workers=1, env_options=opts, timeout_s=60) as pool:
            stats = Collector(Zero(), pool, max_steps=8).collect(groups, seed=0).stats
        assert (stats["render_s"] > 0) == rendered
        assert 0 <= stats["render_s"] <= stats["sim_s"]
        split = time_split(stats, collect_s=stats["wall_s"], update_s=0.25)
        assert split["time/iteration_s"] == pytest.approx(stats["wall_s"] + 0.25)
        assert split["time/render_s"] + split["time/physics_s"] == pytest.approx(split["time/env_s"])
