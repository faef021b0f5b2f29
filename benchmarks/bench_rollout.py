"""Rollout throughput: the batched collector on the embedded tabletop suite, per pool backend.

    .venv/bin/python benchmarks/bench_rollout.py                 # tiny VLA, 8 envs, 1 and 2 workers
    .venv/bin/python benchmarks/bench_rollout.py --workers 1 2 4 8 --envs 16 --image-size 128

Each case collects `--groups` groups of `--group-size` rollouts of `--max-steps` control
steps with a flow-head compact VLA (random weights: "tiny" CNN and hashed text by default,
`--real-encoders` for EfficientNet-Lite0 + MiniLM, `--policy DIR` for a checkpoint, whose
image size and chunk size then apply). The reference is the in-process pool in
the same script (speed ratio = env steps/s of the case / env steps/s of the reference).
A warm-up collection (env construction, worker imports) is excluded from the timing.

With 2 lanes the envs form two blocks that take turns: the policy computes one block's
chunks while the other block's workers simulate (`Collector(lanes=2)`); the time split is
then of overlapping intervals and need not add up to 100%.

The time split comes from `CollectResult.stats`: sim = env time on the critical path
(slowest worker of each call), policy = inside `policy.act`, transfer = pool wall time
minus the critical-path env time (pickling, pipes, scheduling; with lanes an upper bound, as
a call's wall time then includes the other lane's policy time), waiting = time the
collector blocked on env results. One GRPO update on the collected trajectories is timed
as well, to compare learning with collection cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from smoothvla.algorithms.grpo import GRPO, GRPOConfig  # noqa: E402
from smoothvla.policies import CompactVLA, Normalizer, VLAConfig  # noqa: E402
from smoothvla.rewards import smooth_reward  # noqa: E402
from smoothvla.rollout.collector import Collector, GroupRequest  # noqa: E402
from smoothvla.rollout.pool import InProcessPool, ProcessPool  # noqa: E402

TASK = "tabletop-object/pick-ketchup-place-basket-v1"


def make_policy(args) -> CompactVLA:
    if args.policy:
        from smoothvla.policies import load_policy

        policy = load_policy(args.policy).eval()
        args.image_size, args.chunk_size = policy.cfg.image_size, policy.cfg.chunk_size
        return policy
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-1, 1, (500, 7)), rng.normal(size=(500, 8)))
    encoders = {} if args.real_encoders else {"vision_encoder": "tiny", "text_encoder": "hash"}
    cfg = VLAConfig(head="flow", image_size=args.image_size, chunk_size=args.chunk_size, **encoders)
    return CompactVLA(cfg, norm).eval()


def collect_once(policy, pool, args, seed, lanes):
    groups = [GroupRequest(args.task, g, 100 + g, args.group_size) for g in range(args.groups)]
    collector = Collector(policy, pool, max_steps=args.max_steps, lanes=lanes)
    return collector.collect(groups, seed=seed)


def measure(name, pool, policy, args, lanes=1) -> dict:
    collect_once(policy, pool, args, seed=0, lanes=lanes)  # warm-up: env construction, renders
    best = None
    for rep in range(args.reps):
        result = collect_once(policy, pool, args, seed=1 + rep, lanes=lanes)
        s = result.stats
        if best is None or s["wall_s"] < best["wall_s"]:
            best, trajs = s, result.trajectories
    steps_per_s = best["env_steps"] / best["wall_s"]
    for t in trajs:
        t.reward, t.reward_terms = smooth_reward(t)
    trajs[0].reward += 1.0  # make sure one group has spread, so the update runs
    algo = GRPO(policy, GRPOConfig(lr=1e-6, dynamic_sampling=False))
    start = time.perf_counter()
    algo.update(trajs)
    update_s = time.perf_counter() - start
    return {
        "case": name,
        "env_steps": best["env_steps"],
        "wall_s": best["wall_s"],
        "steps_per_s": steps_per_s,
        "sim_frac": best["sim_critical_s"] / best["wall_s"],
        "policy_frac": best["policy_s"] / best["wall_s"],
        "transfer_frac": best["transfer_s"] / best["wall_s"],
        "wait_frac": best["wait_s"] / best["wall_s"],
        "sim_cpu_s": best["sim_s"],
        "dropped": best.get("dropped", 0.0),
        "grpo_update_s": update_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--envs", type=int, default=8, help="envs in every pool")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2], help="for worker pools")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--real-encoders", action="store_true")
    parser.add_argument("--policy", default="", help="a checkpoint dir instead of random weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = make_policy(args)
    options = {"image_size": args.image_size}

    rows = []
    with InProcessPool(args.envs, env_options=options) as pool:
        rows.append(measure("in-process (reference)", pool, policy, args))
    for w in args.workers:
        with ProcessPool(args.envs, num_workers=w, env_options=options) as pool:
            for lanes in args.lanes:
                name = f"{w} worker process(es), {lanes} lane(s)"
                rows.append(measure(name, pool, policy, args, lanes))
    ref = rows[0]["steps_per_s"]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.envs} envs, {args.groups}x{args.group_size} rollouts of {args.max_steps} steps, "
        f"chunk {args.chunk_size}, {args.image_size}-px images (2 cameras), "
        f"{args.policy or ('real' if args.real_encoders else 'tiny') + ' encoders'}; "
        f"best of {args.reps}\n"
    )
    print("| pool | env steps/s | x ref. | sim | policy | transfer | waiting | GRPO update s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['steps_per_s']:.1f} | {r['steps_per_s'] / ref:.2f} | "
            f"{r['sim_frac']:.0%} | {r['policy_frac']:.0%} | {r['transfer_frac']:.0%} | "
            f"{r['wait_frac']:.0%} | {r['grpo_update_s']:.2f} |"
        )
    print("\n" + json.dumps(rows))


if __name__ == "__main__":
    main()
