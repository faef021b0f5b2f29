"""Data-parallel learner on 2 gloo processes: identical ranks, equal to one process on the union."""

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from smoothvla.algorithms.distributed import merge_shards

sys.path.insert(0, str(Path(__file__).parent))  # dist_worker.py
import dist_worker

torch.set_num_threads(1)
WORLD = 2


@pytest.fixture(scope="module")
def update_runs(tmp_path_factory):
    """Both ranks' results of one GRPO, PPO and DPO update on the same collected union."""
    out = tmp_path_factory.mktemp("dist_update")
    mp.spawn(dist_worker.update_worker, args=(WORLD, str(out / "rendezvous"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", ["grpo", "ppo", "dpo"])
def test_two_ranks_hold_identical_parameters_equal_to_one_process_on_the_union(update_runs, name):
    rank0, rank1 = update_runs
    assert rank0["initial"].keys() == rank1["initial"].keys()
    assert all(torch.equal(rank0["initial"][k], rank1["initial"][k]) for k in rank0["initial"])  # broadcast
    # rank 0 collected groups 0 and 2 (8 episodes), rank 1 group 1 (4 episodes)
    assert len(rank0["local"]) == 8 and len(rank1["local"]) == 4 and rank0["num_union"] == 12
    after0, after1 = rank0["updates"][name], rank1["updates"][name]
    assert after0["equal_across_ranks"] and after1["equal_across_ranks"]
    assert all(torch.equal(after0["params"][k], after1["params"][k]) for k in after0["params"])

    # the same update in one process on the union of both ranks' trajectories (with all obs)
    policy = dist_worker.GaussianChunkPolicy()
    policy.load_state_dict(rank0["initial"])
    union = merge_shards([rank0["local"], rank1["local"]])
    assert [t.group_id for t in union] == [0] * 4 + [1] * 4 + [2] * 4
    for traj in union:
        traj.reward, traj.reward_terms = dist_worker.reward(traj), {}
    single_stats = dist_worker.algorithms(policy)[name]().update(union)
    # All-reducing two partial gradients sums them in another order than one process does, so
    # float32 rounding differs by ~1e-7 relative. Adam divides by sqrt(v): on a parameter whose
    # gradient is near zero that becomes up to ~1e-3 of a step (CI saw 1.03e-5 at lr 1e-2).
    # A real mismatch (a dropped shard, a missing average) is of the order of a step, lr.
    step_tol = 1e-2 * dist_worker.LR
    moved = 0.0
    for key, value in policy.state_dict().items():
        torch.testing.assert_close(after0["params"][key], value, rtol=1e-5, atol=step_tol)
        moved += float((value - rank0["initial"][key]).abs().sum())
    assert moved > 1e-3  # the update did something
    for key in ("loss", "trajectories", "success_rate", "reward_mean"):
        if key in single_stats:
            assert after0["stats"][key] == pytest.approx(single_stats[key], rel=1e-5, abs=1e-6), key


def test_distributed_trainer_writes_once_and_resumes_like_an_uninterrupted_run(tmp_path):
    mp.spawn(dist_worker.trainer_worker, args=(WORLD, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"trainer_rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert ranks[0]["equal_across_ranks"] and ranks[1]["equal_across_ranks"]
    for key, value in ranks[0]["straight"].items():
        assert torch.equal(value, ranks[0]["resumed"][key]), key
        assert torch.equal(value, ranks[1]["resumed"][key]), key
    for run in ("straight", "resumed"):
        lines = [json.loads(x) for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        assert [x["iteration"] for x in lines] == [0.0, 1.0, 2.0]  # rank 0 alone logs
        assert all(x["world_size"] == 2.0 and x["trajectories"] == 12.0 for x in lines)
        assert (tmp_path / run / "checkpoint" / "state.pt").exists()
        assert not list((tmp_path / run / "checkpoint").glob(".*tmp*"))
    straight = [json.loads(x) for x in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert straight[-1]["loss"] == resumed[-1]["loss"]


def test_sharded_policy_on_one_rank_is_the_bare_policy(tmp_path):
    import copy

    import torch.distributed as dist

    from smoothvla.algorithms.distributed import ShardedPolicy, init_distributed

    with pytest.raises(RuntimeError, match="init_distributed"):
        ShardedPolicy(dist_worker.GaussianChunkPolicy())
    init_distributed(0, 1, backend="gloo", init_method=f"file://{tmp_path / 'rendezvous'}")
    try:
        policy = dist_worker.GaussianChunkPolicy(seed=4)
        sharded = ShardedPolicy(policy)
        assert sharded.state_dict().keys() == policy.state_dict().keys()  # checkpoints portable
        assert sharded.chunk_size == policy.chunk_size  # attributes fall through
        obs = [{"state": torch.randn(6).numpy()} for _ in range(3)]
        chunk = policy.act(obs, sample=True)
        torch.testing.assert_close(sharded.log_prob(obs, chunk), policy.log_prob(obs, chunk))
        assert copy.deepcopy(sharded).module is not policy
        with pytest.raises(ValueError, match="nn.Module"):
            ShardedPolicy(object())
    finally:
        dist.destroy_process_group()
