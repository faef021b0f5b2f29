"""GRPO, PPO (ORZ) and DPO on the point-mass reach task: learning curves and cost per iteration.

    .venv/bin/python benchmarks/rl_point_mass.py                  # 40 iterations, seeds 0 1 2
    .venv/bin/python benchmarks/rl_point_mass.py --iterations 60 --seeds 0

The env is `rollout.fake_env.PointMassEnv` (16 steps, goal 0.2 away on a circle, 8 init
states), the policy `rollout.fake_policy.GaussianChunkPolicy` (chunks of 4, init std 0.5),
the reward the hybrid smooth reward (lam 0.2, jerk_scale 800 = the random policy's mean
jerk). Each iteration collects 4 groups of 8 rollouts in process and takes one update.
Reported: success rate over the first and last 5 iterations (mean over seeds), the first
iteration with a 5-iteration success mean >= 0.8, weight drift at the end, and seconds per
iteration (collect + update) relative to collection alone (the reference, same script).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from smoothvla.algorithms.dpo import DPOConfig
from smoothvla.algorithms.grpo import GRPOConfig
from smoothvla.algorithms.ppo import PPOConfig
from smoothvla.algorithms.trainer import TrainConfig, Trainer, make_algorithm
from smoothvla.rewards import RewardConfig
from smoothvla.rollout.collector import Collector
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool

TASK = "fake-reach/point-mass-v1"
LR = 3e-3


def run(algorithm: str, seed: int, iterations: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            tasks=(TASK,),
            algorithm=algorithm,
            iterations=iterations,
            groups_per_iteration=4,
            group_size=8,
            seed=seed,
            out_dir=out,
            checkpoint_every=iterations,
            reward=RewardConfig(name="smooth", jerk_scale=800.0),
            grpo=GRPOConfig(lr=LR),
            ppo=PPOConfig.orz(lr=LR, value_lr=LR),
            dpo=DPOConfig(lr=1e-3),
        )
        policy = GaussianChunkPolicy(init_std=0.5, seed=seed)
        pool = InProcessPool(32, env_factory=make_point_mass, env_options={"goal_distance": 0.2})
        trainer = Trainer(
            cfg,
            make_algorithm(policy, cfg),
            Collector(policy, pool),
            num_init_states={TASK: 8},
            echo=None,
        )
        start = time.perf_counter()
        history = trainer.run()
        wall = time.perf_counter() - start
    success = np.array([h["success_rate"] for h in history])
    smoothed = np.convolve(success, np.ones(5) / 5, mode="valid")
    reached = np.flatnonzero(smoothed >= 0.8)
    collect_s = sum(h["rollout/wall_s"] for h in history)
    return {
        "algorithm": algorithm,
        "seed": seed,
        "success_first5": float(success[:5].mean()),
        "success_last5": float(success[-5:].mean()),
        "iterations_to_0.8": int(reached[0] + 5) if len(reached) else None,
        "weight_drift": history[-1]["weight_drift"],
        "s_per_iteration": wall / iterations,
        "x_collect": wall / collect_s,
        "success": success.round(3).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algorithms", nargs="+", default=["grpo", "ppo", "dpo"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [run(a, s, args.iterations) for a in args.algorithms for s in args.seeds]
    print(f"{args.iterations} iterations x 32 rollouts, seeds {args.seeds}\n")
    print(
        "| algorithm | success, first 5 it. | success, last 5 it. | it. to 0.8 (per seed) "
        "| weight drift | s / iteration | x collect only |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for a in args.algorithms:
        rs = [r for r in rows if r["algorithm"] == a]
        print(
            f"| {a} | {np.mean([r['success_first5'] for r in rs]):.2f} | "
            f"{np.mean([r['success_last5'] for r in rs]):.2f} | "
            f"{', '.join(str(r['iterations_to_0.8']) for r in rs)} | "
            f"{np.mean([r['weight_drift'] for r in rs]):.3f} | "
            f"{np.mean([r['s_per_iteration'] for r in rs]):.3f} | "
            f"{np.mean([r['x_collect'] for r in rs]):.2f} |"
        )
    print("\n" + json.dumps(rows))


if __name__ == "__main__":
    main()
