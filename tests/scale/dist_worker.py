"""Bodies of the 2-process gloo tests (spawned by test_distributed.py; importable by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from smoothvla.algorithms.distributed import (
    DistributedTrainer,
    RemoteObs,
    ShardedCollector,
    ShardedPolicy,
    broadcast_module,
    init_distributed,
    parameters_equal_across_ranks,
    shutdown_distributed,
)
from smoothvla.algorithms.dpo import DPO, DPOConfig
from smoothvla.algorithms.grpo import GRPO, GRPOConfig
from smoothvla.algorithms.ppo import PPO, PPOConfig
from smoothvla.algorithms.trainer import TrainConfig, make_algorithm
from smoothvla.rewards import RewardConfig
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool

TASK = "fake-reach/point-mass-v1"
ENV_OPTIONS = {"goal_distance": 0.2, "max_steps": 12}
# three groups: rank 0 collects two and rank 1 one, so shares (and chunk counts) differ
GROUPS = [GroupRequest(TASK, i, 50 + i, 4) for i in (0, 3, 5)]
LR = 1e-2


def algorithms(policy):
    """The three algorithms with small minibatches, so one update takes several steps."""
    return {
        "grpo": lambda: GRPO(policy, GRPOConfig(lr=LR, minibatch_chunks=8, epochs=2, beta=0.05, dynamic_sampling=False)),
        "ppo": lambda: PPO(policy, PPOConfig(lr=LR, value_lr=LR, minibatch_chunks=8)),
        "dpo": lambda: DPO(policy, DPOConfig(lr=LR, minibatch_pairs=2)),
    }


def reward(traj) -> float:
    """Continuous, so every group has reward spread: progress towards +x."""
    return float(traj.ee_pos[-1, 0] - 0.3 * np.abs(traj.ee_pos[-1, 1]))


def update_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    init_distributed(rank, world, init_method=f"file://{init_file}")
    out = Path(out_dir)
    policy = GaussianChunkPolicy(seed=10 + rank)  # different on purpose: broadcast aligns them
    broadcast_module(policy)
    initial = {k: v.clone() for k, v in policy.state_dict().items()}
    collector = ShardedCollector(Collector(policy, InProcessPool(4, env_factory=make_point_mass, env_options=ENV_OPTIONS)))
    union = collector.collect(GROUPS, seed=3).trajectories
    for traj in union:
        traj.reward, traj.reward_terms = reward(traj), {}
    local = [t for t in union if not isinstance(t.chunk_obs[0], RemoteObs)]
    results = {"local": local, "initial": initial, "num_union": len(union), "updates": {}}
    for name, build in algorithms(ShardedPolicy(policy)).items():
        policy.load_state_dict(initial)
        stats = build().update(union)
        results["updates"][name] = {
            "stats": stats,
            "params": {k: v.clone() for k, v in policy.state_dict().items()},
            "equal_across_ranks": parameters_equal_across_ranks(policy),
        }
    torch.save(results, out / f"rank{rank}.pt")
    shutdown_distributed()


def _train(out_dir: Path, iterations: int, resume: bool) -> GaussianChunkPolicy:
    cfg = TrainConfig(
        tasks=(TASK,), algorithm="grpo", iterations=iterations, groups_per_iteration=3, group_size=4,
        seed=5, out_dir=str(out_dir), checkpoint_every=1, resume=resume,
        reward=RewardConfig(name="smooth", jerk_scale=800.0), grpo=GRPOConfig(lr=3e-3, minibatch_chunks=16),
    )
    policy = GaussianChunkPolicy(init_std=0.5)
    broadcast_module(policy)
    pool = InProcessPool(4, env_factory=make_point_mass, env_options=ENV_OPTIONS)
    trainer = DistributedTrainer(
        cfg, make_algorithm(ShardedPolicy(policy), cfg), Collector(policy, pool),
        num_init_states={TASK: 8},
        reward_fn=lambda t: (reward(t), {"progress": reward(t)}),
    )
    trainer.run()
    return policy


def trainer_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """3 iterations straight, and 2 + resume to 3; both ranks' final weights to disk."""
    torch.set_num_threads(1)
    init_distributed(rank, world, init_method=f"file://{init_file}")
    out = Path(out_dir)
    straight = _train(out / "straight", 3, resume=False)
    _train(out / "resumed", 2, resume=False)
    resumed = _train(out / "resumed", 3, resume=True)
    torch.save(
        {
            "straight": straight.state_dict(),
            "resumed": resumed.state_dict(),
            "equal_across_ranks": parameters_equal_across_ranks(straight),
        },
        out / f"trainer_rank{rank}.pt",
    )
    shutdown_distributed()
