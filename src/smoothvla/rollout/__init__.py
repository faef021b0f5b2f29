"""Rollout records, collectors and worker pools.

- `Trajectory` (`smoothvla.trajectory`): what one episode leaves behind (re-exported here).
- `collector.Collector`, `GroupRequest`: groups of G rollouts per task and init state, the
  policy batched over all live envs, one chunk per round.
- `pool.ProcessPool` (spawned workers, restarted on crash or hang), `pool.InProcessPool`,
  `pool.make_pool`; `ray_pool.RayPool` across machines.
- `fake_env.PointMassEnv`, `fake_policy.GaussianChunkPolicy`: small stand-ins for tests and
  benchmarks of collectors and algorithms.

Only `Trajectory` is imported here, so that importing this package pulls in no torch.
"""

from smoothvla.trajectory import Trajectory

__all__ = ["Trajectory"]
