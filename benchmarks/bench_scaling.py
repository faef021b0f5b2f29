"""Scale-out numbers: rollout throughput vs Ray workers, and Ray's overhead vs ProcessPool.

    .venv/bin/python benchmarks/bench_scaling.py                         # tabletop, 128 px, prints a markdown table (kept in docs/BENCHMARKS.md)
    .venv/bin/python benchmarks/bench_scaling.py --env fake --reps 3     # point-mass env, no MuJoCo
    .venv/bin/python benchmarks/bench_scaling.py --ray-address auto      # on a running Ray cluster

Every case runs the same collection (`--groups` x `--group-size` episodes of `--max-steps`
control steps, chunks of `--chunk` actions, `--envs` envs) with a policy that samples
random chunks (so the numbers are the pools', not a network's; the policy runs batched in
this process, as in training). Cases: ProcessPool and RayPool with 1 and 2 workers, and
the in-process pool as the reference. All pools stay up for the whole run and the
repetitions go round-robin over the cases, so that a change of machine load hits every
case alike; each case's number is the median over repetitions of env steps / wall second
of one `collect` (after one warm-up collection that builds the envs).

Ratios reported: ray-2/ray-1 (scaling; the physical limit is the number of idle cores) and
ray-n/process-n (Ray's overhead; 1.0 = none). The 1-minute load average is read before
and after: on a shared machine, numbers taken under load say little about scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from bench_envs import cpu_model  # noqa: E402  (same folder: run as a script)
from smoothvla.policies.base import ActionChunk
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.pool import InProcessPool, ProcessPool

TABLETOP_TASK = "tabletop-object/pick-ketchup-place-basket-v1"
FAKE_TASK = "fake-reach/point-mass-v1"


class RandomChunkPolicy:
    """Gaussian random chunks (std 0.3, clipped to [-1, 1]): pool cost only."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size

    def reset(self) -> None:
        pass

    def act(self, obs: list[dict], *, sample: bool) -> ActionChunk:
        actions = (0.3 * torch.randn(len(obs), self.chunk_size, 7)).clamp(-1, 1)
        return ActionChunk(actions, torch.zeros(len(obs)))


def make_policy(kind: str, chunk_size: int, image_size: int):
    """`random`: random chunks; `vla-tiny` / `vla`: a flow-head compact VLA with random weights
    (tiny CNN + hashed text, or the real EfficientNet-Lite0 + MiniLM encoders)."""
    if kind == "random":
        return RandomChunkPolicy(chunk_size)
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-1, 1, (500, 7)), rng.normal(size=(500, 8)))
    encoders = {"vision_encoder": "tiny", "text_encoder": "hash"} if kind == "vla-tiny" else {}
    cfg = VLAConfig(head="flow", image_size=image_size, chunk_size=chunk_size, cameras=("agentview",), **encoders)
    return CompactVLA(cfg, norm).eval()


def load_average() -> float:
    return os.getloadavg()[0]


def version(name: str) -> str:
    try:
        from importlib.metadata import version as v

        return v(name)
    except Exception:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=("tabletop", "fake"), default="tabletop")
    parser.add_argument("--task", default=None, help="task id (default: a tabletop-object task or the point mass)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--policy", choices=("random", "vla-tiny", "vla"), default="random",
                        help="random chunks (pool cost only) or a compact VLA acting in the driver")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ray-address", default=None, help="attach to a Ray cluster instead of a local one")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray (ignored with --ray-address)")
    parser.add_argument("--no-ray", action="store_true", help="ProcessPool cases only")
    parser.add_argument("--out", default="/tmp/bench_scaling.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.env == "tabletop":
        task = args.task or TABLETOP_TASK
        factory = None  # smoothvla.envs.make
        options = {"cameras": ("agentview",), "image_size": args.image_size}
    else:
        from smoothvla.rollout.fake_env import make_point_mass

        task = args.task or FAKE_TASK
        factory = make_point_mass
        options = {"max_steps": args.max_steps, "image_size": args.image_size}
    groups = [GroupRequest(task, g, 1000 + g, args.group_size) for g in range(args.groups)]
    policy = make_policy(args.policy, args.chunk, args.image_size)
    load_before = load_average()
    started = time.time()

    pools: dict[str, object] = {"inprocess": InProcessPool(args.envs, env_factory=factory, env_options=options)}
    for n in args.workers:
        pools[f"process-{n}"] = ProcessPool(args.envs, num_workers=n, env_factory=factory, env_options=options)
    ray_session = None
    if not args.no_ray:
        import ray

        from smoothvla.rollout.ray_pool import RayPool

        ray.init(
            address=args.ray_address,
            num_cpus=None if args.ray_address else args.ray_cpus,
            include_dashboard=False,
            log_to_driver=False,
        )
        ray_session = ray
        total = sum(args.workers)
        # every pool stays up at once: share the (accounting-only) CPUs among all actors
        cpus = None if args.ray_address else args.ray_cpus / total
        for n in args.workers:
            pools[f"ray-{n}"] = RayPool(
                args.envs, num_workers=n, env_factory=factory, env_options=options,
                cpus_per_worker=cpus if cpus is not None else 1.0,
            )
    try:
        collectors = {name: Collector(policy, pool, max_steps=args.max_steps) for name, pool in pools.items()}
        for name, collector in collectors.items():  # warm-up: env construction, imports
            collector.collect(groups, seed=0)
        rates: dict[str, list[float]] = {name: [] for name in collectors}
        splits: dict[str, list[dict]] = {name: [] for name in collectors}
        for rep in range(args.reps):
            for name, collector in collectors.items():
                stats = collector.collect(groups, seed=1 + rep).stats
                rates[name].append(stats["env_steps"] / stats["wall_s"])
                splits[name].append(stats)
                print(f"rep {rep} {name:10s} {rates[name][-1]:8.1f} steps/s", file=sys.stderr)
    finally:
        for pool in pools.values():
            pool.close()
        if ray_session is not None:
            ray_session.shutdown()
    load_after = load_average()

    median = {name: statistics.median(r) for name, r in rates.items()}
    ref = median["inprocess"]
    rows = []
    for name in rates:
        s = splits[name]
        wall = sum(x["wall_s"] for x in s)
        rows.append({
            "case": name,
            "steps_per_s": median[name],
            "min": min(rates[name]),
            "max": max(rates[name]),
            "vs_inprocess": median[name] / ref,
            "sim_frac": sum(x["sim_critical_s"] for x in s) / wall,
            "policy_frac": sum(x["policy_s"] for x in s) / wall,
            "transfer_frac": sum(x["transfer_s"] for x in s) / wall,
            "dropped": sum(x.get("dropped", 0.0) for x in s),
        })
    ratios = {}
    for a, b, label in (("ray-2", "ray-1", "ray 2 workers / 1 worker"),
                        ("process-2", "process-1", "process 2 workers / 1 worker"),
                        ("ray-1", "process-1", "ray / process, 1 worker"),
                        ("ray-2", "process-2", "ray / process, 2 workers")):
        if a in median and b in median:
            ratios[label] = median[a] / median[b]

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    env_desc = (f"tabletop `{task}`, one {args.image_size}-px camera (MUJOCO_GL={os.environ.get('MUJOCO_GL')})"
                if args.env == "tabletop" else f"point-mass fake env `{task}`")
    lines = [
        "## Scale-out: Ray rollout workers (benchmarks/bench_scaling.py)",
        "",
        f"Measured {when} on {os.cpu_count()} x {cpu_model()} (`{platform.platform()}`), Python "
        f"{platform.python_version()}, torch {torch.__version__}, ray {version('ray')}, mujoco {version('mujoco')}.",
        f"1-minute load average: {load_before:.2f} before, {load_after:.2f} after "
        f"({time.time() - started:.0f} s run).",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/bench_scaling.py'] + sys.argv[1:])}`",
        "",
        f"Workload per collection: {env_desc}; {args.groups} groups x {args.group_size} episodes, "
        f"{args.max_steps} control steps each, chunks of {args.chunk} actions, {args.envs} envs; "
        f"{args.policy} policy in the driver (torch threads: 1). Median of {args.reps} round-robin repetitions.",
        "",
        "| case | env steps/s (median) | min - max | vs in-process | env (critical path) | policy | transfer | dropped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['steps_per_s']:.0f} | {r['min']:.0f} - {r['max']:.0f} | {r['vs_inprocess']:.2f}x "
            f"| {100 * r['sim_frac']:.0f}% | {100 * r['policy_frac']:.1f}% | {100 * r['transfer_frac']:.0f}% "
            f"| {r['dropped']:.0f} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {label} | {value:.2f} |" for label, value in ratios.items()]
    lines += [
        "",
        "Time split columns are shares of the collection wall time: env on the critical path "
        "(slowest worker per call), inside `policy.act`, and transfer (pool wall time minus the "
        "critical-path env time: pickling, pipes or Ray, scheduling).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"rows": rows, "ratios": ratios, "load_before": load_before, "load_after": load_after}),
          file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as f:
            f.write(text)
        os.replace(f.name, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
