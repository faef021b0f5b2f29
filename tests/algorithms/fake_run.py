"""A tiny RL run on the point-mass env, shared by the trainer tests and run as a script by
the kill-and-resume test: `python fake_run.py OUT_DIR ITERATIONS [--resume]`."""

import sys

import torch

from smoothvla.algorithms.grpo import GRPOConfig
from smoothvla.algorithms.trainer import TrainConfig, Trainer, make_algorithm
from smoothvla.rewards import RewardConfig
from smoothvla.rollout.collector import Collector
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool

TASK = "fake-reach/point-mass-v1"
# random Gaussian chunks have a mean jerk of ~800 m/s^3 on this env
JERK_SCALE = 800.0


def build(
    out_dir,
    iterations,
    *,
    resume=False,
    algorithm="grpo",
    reward="smooth",
    step_sleep_s=0.0,
    max_resample_rounds=0,
    jerk_scale_from_policy=False,
    seed=5,
    init_ids=(),
    env_options=None,
    echo=None,
    **grpo,
):
    torch.set_num_threads(1)
    cfg = TrainConfig(
        tasks=(TASK,),
        algorithm=algorithm,
        iterations=iterations,
        groups_per_iteration=4,
        group_size=8,
        seed=seed,
        init_ids=init_ids,
        out_dir=str(out_dir),
        checkpoint_every=1,
        resume=resume,
        max_resample_rounds=max_resample_rounds,
        reward=RewardConfig(name=reward, jerk_scale=JERK_SCALE,
                            jerk_scale_from_policy=jerk_scale_from_policy),
        grpo=GRPOConfig(**{"lr": 3e-3, **grpo}),
    )
    policy = GaussianChunkPolicy(init_std=0.5)
    pool = InProcessPool(
        32,
        env_factory=make_point_mass,
        env_options={"step_sleep_s": step_sleep_s, "goal_distance": 0.2, **(env_options or {})},
    )
    trainer = Trainer(
        cfg,
        make_algorithm(policy, cfg),
        Collector(policy, pool),
        num_init_states={TASK: 8},
        echo=echo,
    )
    return trainer, policy


if __name__ == "__main__":
    trainer, _ = build(
        sys.argv[1], int(sys.argv[2]), resume="--resume" in sys.argv, step_sleep_s=0.001
    )
    trainer.run()
