"""Env builds with and without task affinity (rollout/affinity.py), on an evaluation-shaped
plan: TASKS tasks x INITS init states, task-major like `smoothvla eval`, in batches of BATCH
episodes on ENVS in-process env slots, acted greedily by a fixed random map of the proprio
state (no model: the envs' cost is what is measured), MAX_STEPS control steps per episode.

    python benchmarks/bench_affinity.py --suite libero-object [--tasks 3 --inits 3 --envs 4]

Runs the plan twice, envs taking episodes in order (as before affinity) and with affinity;
counts env builds (a spy env factory), times the whole run, and checks that every episode's
end-effector path and actions are bit for bit the same in both. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from smoothvla.envs import list_tasks, make
from smoothvla.policies.base import ActionChunk
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.pool import InProcessPool


class ProprioMap:
    """Greedy chunks from a fixed random linear map of the proprio state."""

    chunk_size = 4

    def __init__(self, dim: int) -> None:
        self.weight = torch.randn(dim, 4 * 7, generator=torch.Generator().manual_seed(0))

    def reset(self) -> None:
        pass

    def act(self, obs, *, sample: bool) -> ActionChunk:
        p = torch.as_tensor(np.stack([o["proprio"] for o in obs]), dtype=torch.float32)
        mean = torch.tanh(p @ self.weight).view(len(obs), 4, 7) * 0.5
        return ActionChunk(mean, torch.zeros(len(obs)))


class Counting:
    """`smoothvla.envs.make`, counting builds and their seconds."""

    def __init__(self) -> None:
        self.builds, self.build_s = 0, 0.0

    def __call__(self, task_id: str, **options):
        start = time.perf_counter()
        env = make(task_id, **options)
        self.builds += 1
        self.build_s += time.perf_counter() - start
        return env


def run(tasks: list[str], args: argparse.Namespace, affinity: bool):
    requests = [GroupRequest(t, i, 0, 1) for t in tasks for i in range(args.inits)]
    factory = Counting()
    paths = []
    start = time.perf_counter()
    with InProcessPool(args.envs, env_factory=factory) as pool:
        probe = make(tasks[0], cameras=())
        dim = probe.reset(seed=0, init_id=0)[0]["proprio"].shape[0]
        probe.close()
        collector = Collector(ProprioMap(dim), pool, sample=False, max_steps=args.max_steps,
                              affinity=affinity)
        for b in range(0, len(requests), args.batch):
            out = collector.collect(requests[b : b + args.batch], seed=b)
            paths += [(t.task_id, t.init_id, t.ee_pos, t.actions) for t in out.trajectories]
    return factory, time.perf_counter() - start, paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="libero-object")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--inits", type=int, default=3)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = [t.task_id for t in list_tasks(args.suite)][: args.tasks]
    make(tasks[0]).close()  # imports and first-build caches, outside both timings
    rows = []
    for affinity in (False, True):
        factory, wall, paths = run(tasks, args, affinity)
        rows.append((affinity, factory, wall, paths))
    same = all(a[:2] == b[:2] and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])
               for a, b in zip(rows[0][3], rows[1][3], strict=True))
    print(f"{args.suite}: {args.tasks} tasks x {args.inits} init states, batches of "
          f"{args.batch} on {args.envs} in-process envs, {args.max_steps} steps per episode; "
          f"{platform.processor() or platform.machine()}")
    print("| slots take episodes | env builds | build s | wall s |")
    print("|---|---|---|---|")
    for affinity, factory, wall, _ in rows:
        print(f"| {'with task affinity' if affinity else 'in order (before)'} | "
              f"{factory.builds} | {factory.build_s:.1f} | {wall:.1f} |")
    print(f"same paths and actions in both: {same}")
    if not same:
        raise SystemExit("affinity changed a trajectory")


if __name__ == "__main__":
    main()
