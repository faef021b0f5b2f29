"""Rollout records, collectors and worker pools.

- `trajectory.Trajectory`: what one episode leaves behind (re-exported here).
- `collector.Collector`, `GroupRequest`: groups of G rollouts per task and init state, the
  policy batched over all live envs, one chunk per round.
- `pool.ProcessPool` (spawned workers, restarted on crash or hang), `pool.InProcessPool`,
  `pool.make_pool`; `ray_pool.RayPool` across machines.
- `fake_env.PointMassEnv`, `fake_policy.GaussianChunkPolicy`: small stand-ins for tests and
  benchmarks of collectors and algorithms.

Only `Trajectory` is imported here: metrics and rewards import this package and must not
pull in torch.
"""

from smoothvla.rollout.trajectory import Trajectory

__all__ = ["Trajectory"]
