"""Rollout records, collectors and worker pools.

- `Trajectory` (`smoothvla.trajectory`): what one episode leaves behind (re-exported here).
- `collector.Collector`, `GroupRequest`: groups of G rollouts per task and init state, the
  policy batched over all live envs, one chunk per round.
- `pool.make_pool(backend, num_envs, ...)`: the one way to build a pool: `pool.InProcessPool`,
  or the pool core `workers.WorkerPool` with its workers as local processes
  (`workers.ProcessPool`, restarted on crash or hang) or Ray actors across machines
  (`ray_pool.RayPool`).
- `fake_env.PointMassEnv`, `fake_policy.GaussianChunkPolicy`: small stand-ins for tests and
  benchmarks of collectors and algorithms.

Only `Trajectory` is imported here, so that importing this package pulls in no torch.
"""

from smoothvla.trajectory import Trajectory

__all__ = ["Trajectory"]
