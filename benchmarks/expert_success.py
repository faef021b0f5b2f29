"""Success of the scripted expert on every tabletop task, and its mean end-effector jerk.

    .venv/bin/python benchmarks/expert_success.py         # 4 suites x 10 tasks x 50 inits
    .venv/bin/python benchmarks/expert_success.py --inits 5 --suites tabletop-object
    .venv/bin/python benchmarks/expert_success.py --markdown docs/_experts.md

Episodes run without cameras in `--workers` spawned processes. Jerk is
`smoothvla.metrics.mean_jerk` of `info["ee_pos"]` at the control rate over each successful
episode (unfiltered: the idle filter only applies to written demos), averaged per suite.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

SUITES = ("tabletop-spatial", "tabletop-object", "tabletop-goal", "tabletop-long")

_ENV: dict = {}


def _episode(task_id: str, init_id: int, seed: int) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from smoothvla.envs import make
    from smoothvla.experts.episode import run_episode
    from smoothvla.metrics import mean_jerk

    if task_id not in _ENV:
        for env in _ENV.values():
            env.close()
        _ENV.clear()
        _ENV[task_id] = make(task_id, cameras=())
    env = _ENV[task_id]
    ep = run_episode(env, seed, init_id, record_images=False)
    jerk = mean_jerk(ep.ee_path, env.control_dt) if len(ep.ee_path) >= 4 else float("nan")
    return dict(task_id=task_id, init_id=init_id, success=ep.success, steps=len(ep.actions),
                jerk=jerk, failure=ep.failure, max_steps=env.max_steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=list(SUITES))
    parser.add_argument("--inits", type=int, default=50, help="init states per task (0..n-1)")
    parser.add_argument("--tasks", nargs="*", default=[], help="only these task names")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", default="", help="also write the tables to this file")
    args = parser.parse_args(argv)
    if args.inits <= 0:
        parser.error("--inits must be > 0")

    from smoothvla.envs import list_tasks

    jobs = []
    for suite in args.suites:
        for spec in list_tasks(suite):
            if args.tasks and spec.name not in args.tasks:
                continue
            n = min(args.inits, spec.num_init_states)
            jobs += [(spec.task_id, i, args.seed + i) for i in range(n)]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        results = list(tqdm(pool.map(_episode, *zip(*jobs), chunksize=4), total=len(jobs),
                            desc="expert episodes", file=sys.stderr))
    wall = time.perf_counter() - start

    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_task[r["task_id"]].append(r)
    lines = [f"Expert success over init states 0..{args.inits - 1} (seed {args.seed}); "
             f"{len(results)} episodes in {wall:.0f} s on {args.workers} workers.", "",
             "| task | success | mean steps (ok) | max_steps | mean jerk m/s^3 (ok) |",
             "|---|---|---|---|---|"]
    suite_jerk: dict[str, list[float]] = defaultdict(list)
    suite_ok: dict[str, list[bool]] = defaultdict(list)
    failures = []
    for task_id, rs in by_task.items():
        ok = [r for r in rs if r["success"]]
        suite = task_id.split("/")[0]
        suite_ok[suite] += [r["success"] for r in rs]
        suite_jerk[suite] += [r["jerk"] for r in ok]
        steps = np.mean([r["steps"] for r in ok]) if ok else float("nan")
        jerk = np.mean([r["jerk"] for r in ok]) if ok else float("nan")
        lines.append(f"| {task_id} | {len(ok)}/{len(rs)} ({100 * len(ok) / len(rs):.0f}%) | "
                     f"{steps:.0f} | {rs[0]['max_steps']} | {jerk:.2f} |")
        failures += [r for r in rs if not r["success"]]
    lines += ["", "| suite | success | mean jerk m/s^3 (successful episodes) |", "|---|---|---|"]
    for suite in suite_ok:
        lines.append(f"| {suite} | {100 * np.mean(suite_ok[suite]):.1f}% | "
                     f"{np.mean(suite_jerk[suite]) if suite_jerk[suite] else float('nan'):.2f} |")
    text = "\n".join(lines)
    print(text)
    if failures:
        print("\nfailures:", file=sys.stderr)
        for r in failures:
            print(f"  {r['task_id']} init {r['init_id']}: {r['failure']}", file=sys.stderr)
    if args.markdown:
        tmp = args.markdown + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
