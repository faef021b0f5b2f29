"""Success and jerk of a policy's sampled rollouts at several token-head temperatures.

    .venv/bin/python benchmarks/rollout_temperature.py CHECKPOINT 1.0 0.5 0.2

RL needs groups where some rollouts succeed: this shows which temperature gives them.
Rollouts: the two demo tasks x init states 0-3 x 2 samples, in 2 worker processes.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from smoothvla.metrics import mean_jerk
from smoothvla.policies import load_policy
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.pool import ProcessPool

TASKS = ("tabletop-object/pick-ketchup-place-basket-v1", "tabletop-object/pick-milk-place-basket-v1")


def main(checkpoint: str, temperatures: list[float]) -> None:
    torch.set_num_threads(1)
    for temperature in temperatures:
        policy = load_policy(checkpoint, temperature=temperature)
        policy.eval()
        pool = ProcessPool(8, num_workers=2, env_options={
            "cameras": tuple(policy.cfg.cameras), "image_size": policy.cfg.image_size})
        start = time.perf_counter()
        try:
            with torch.no_grad():
                groups = [GroupRequest(t, i, 0, 2) for t in TASKS for i in range(4)]
                result = Collector(policy, pool, sample=True).collect(groups, seed=0)
        finally:
            pool.close()
        success = [t.success for t in result.trajectories]
        jerk = [mean_jerk(t.ee_pos, t.control_dt) for t in result.trajectories]
        print(f"temperature {temperature}: success {np.mean(success):.2f} of {len(success)}, "
              f"mean jerk {np.mean(jerk):.1f} m/s^3, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], [float(t) for t in sys.argv[2:]])
