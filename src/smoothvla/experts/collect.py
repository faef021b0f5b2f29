"""Scripted-expert demonstrations into a LIBERO-layout HDF5 file: `collect_demos(cfg)`, what
`smoothvla collect` and the study run.

Episodes run in the worker processes of a `rollout.pool` pool (`make_pool("process")`, no
torch, one OpenMP thread each; op "call" runs `JOB_RUNNER` there); the main
process writes successful ones in a fixed order (task by task, init state by init state),
so the same flags give the same file whatever the number of workers. Failed expert episodes
are counted and printed, never written. The file appears at `--out` only when every
episode has been handled (`DemoWriter` writes to a temporary name and renames).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothvla.errors import UserError, check_fields
from smoothvla.io import check_writable_output, remove_stale_temp_files
from smoothvla.rollout.pool import Failure, make_pool

EPISODE_TIMEOUT_S = 24 * 3600.0
"""A worker that does not finish one expert episode within this is taken as hung."""


@dataclass
class CollectConfig:
    """Collect expert demonstrations."""

    out: Path = Path("demos.hdf5")
    """Output HDF5 file (LIBERO layout)."""
    suite: str = "tabletop-object"
    """Suite to collect from (tabletop-spatial, -object, -goal, -long)."""
    episodes_per_task: int = 50
    """Successful-or-not episodes attempted per task, on init states 0, 1, ... (cycled)."""
    tasks: tuple[str, ...] = ()
    """Restrict to these tasks (full ids or names within the suite); empty = all tasks."""
    workers: int = 2
    """Worker processes running the env and the expert."""
    cameras: tuple[str, ...] = ("agentview", "eye_in_hand")
    """Cameras to record as obs/<camera>_rgb; empty records no images."""
    image_size: int = 128
    """Square image size in pixels."""
    seed: int = 0
    """Base seed; episode i of a task uses seed + i."""
    idle_filter: bool = True
    """Drop idle (obs, action) pairs (RL4VLA App. A.2; see smoothvla.experts.idle)."""
    idle_pos_threshold: float = 0.001
    """Idle if the commanded position delta is below this (metres; RL4VLA used 0.01)."""
    idle_rot_threshold: float = 0.01
    """Idle if the commanded rotation delta is below this (radians; RL4VLA used 0.06)."""

    def validate(self) -> None:
        """Clear errors for bad values (called by `collect_demos`, so the CLI reports them
        cleanly)."""
        check_fields(self, episodes_per_task="> 0", workers="> 0", image_size=">= 8",
                     idle_pos_threshold=">= 0", idle_rot_threshold=">= 0")


@dataclass(frozen=True)
class Job:
    task_id: str
    episode: int
    init_id: int
    seed: int


def resolve_tasks(cfg: CollectConfig) -> list[Any]:
    """TaskSpecs to collect, in suite order; clear errors for unknown suites or tasks."""
    from smoothvla.envs import list_tasks

    specs = list_tasks(cfg.suite)  # raises ValueError for an unknown suite
    if not cfg.tasks:
        return specs
    chosen = []
    for name in cfg.tasks:
        match = [s for s in specs if name in (s.task_id, s.name)]
        if not match:
            known = ", ".join(s.name for s in specs)
            raise UserError(f"unknown task {name!r} in suite {cfg.suite!r}; tasks: {known}")
        chosen.extend(m for m in match if m not in chosen)
    return chosen


def make_jobs(cfg: CollectConfig, specs: list[Any]) -> list[Job]:
    """One job per episode, task-major; init states cycle when episodes exceed them."""
    jobs = []
    for spec in specs:
        n_init = max(1, int(spec.num_init_states))
        for i in range(cfg.episodes_per_task):
            jobs.append(Job(spec.task_id, i, i % n_init, cfg.seed + i))
    return jobs


# ----- worker side -----

_ENV: dict[str, Any] = {}


def _get_env(task_id: str, cameras: tuple[str, ...], image_size: int) -> Any:
    from smoothvla.envs import make

    key = f"{task_id}|{cameras}|{image_size}"
    if key not in _ENV:
        for env in _ENV.values():
            env.close()
        _ENV.clear()
        _ENV[key] = make(task_id, cameras=cameras, image_size=image_size)
    return _ENV[key]


def run_job(job: Job, cameras: tuple[str, ...], image_size: int) -> dict[str, Any]:
    """Run one expert episode (in a worker); returns arrays and metadata, never raises on
    expert failure (those come back with success=False)."""
    from smoothvla.experts.episode import run_episode

    env = _get_env(job.task_id, cameras, image_size)
    episode = run_episode(env, job.seed, job.init_id, record_images=bool(cameras))
    return dict(
        job=job, success=episode.success, failure=episode.failure, actions=episode.actions,
        obs=episode.obs, rewards=episode.rewards, instruction=env.task.instruction,
        control_dt=float(env.control_dt), action_scale=dict(env.action_scale),
    )


# What the workers run; a module-level name so tests can substitute a crashing job.
JOB_RUNNER = run_job


# ----- main side -----

def _to_demo(result: dict[str, Any], cfg: CollectConfig):
    from smoothvla.data.hdf5 import Demo
    from smoothvla.experts.idle import filter_idle

    from smoothvla.metrics import mean_jerk

    actions, obs = result["actions"], result["obs"]
    rewards = result["rewards"]
    # Jerk of the unfiltered motion: dropping idle steps breaks the 0.05 s spacing and
    # inflates jerk measured on the written file. This is the reward's jerk_scale source.
    expert_jerk = mean_jerk(obs["ee_pos"], result["control_dt"]) if len(obs["ee_pos"]) >= 4 else float("nan")
    dropped = 0
    if cfg.idle_filter:
        scale = result["action_scale"]
        actions, obs, keep = filter_idle(
            actions, obs, pos_scale=scale["pos"], rot_scale=scale["rot"],
            pos_threshold=cfg.idle_pos_threshold, rot_threshold=cfg.idle_rot_threshold)
        rewards = rewards[keep]
        dropped = int((~keep).sum())
    dones = np.zeros(len(actions), dtype=np.uint8)
    dones[-1] = 1
    job: Job = result["job"]
    attrs = dict(instruction=result["instruction"], task_id=job.task_id, init_id=job.init_id,
                 seed=job.seed, success=bool(result["success"]),
                 control_dt=result["control_dt"], idle_dropped=dropped,
                 expert_mean_jerk=float(expert_jerk))
    return Demo(actions=actions, obs=obs, rewards=rewards, dones=dones, attrs=attrs), dropped


def collect_demos(cfg: CollectConfig) -> int:
    """Run every episode of `cfg` and write the successful ones to `cfg.out`. Returns 0 when
    the file was written, 1 when nothing was (every episode failed, or a worker died; the
    reasons are printed)."""
    from tqdm import tqdm

    from smoothvla.data.hdf5 import DemoWriter

    cfg.validate()
    cfg.out = check_writable_output(cfg.out, "file")
    remove_stale_temp_files(cfg.out.parent, cfg.out.name)  # left by a killed earlier run
    specs = resolve_tasks(cfg)
    jobs = make_jobs(cfg, specs)
    env_args = dict(env_name=cfg.suite, type="smoothvla-tabletop",
                    env_kwargs=dict(cameras=list(cfg.cameras), image_size=cfg.image_size))
    problem_info = dict(problem_name=cfg.suite, tasks={s.task_id: s.instruction for s in specs},
                        language_instruction=specs[0].instruction if len(specs) == 1 else "")
    failures: list[tuple[Job, str]] = []
    written = dropped_total = steps_total = 0

    # Spawned children inherit the environment: one OpenMP thread each. One worker per slot
    # of the pool; each slot runs one episode at a time (op "call"), results in job order.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pending: deque[tuple[int, int]] = deque()  # (ticket, slot)
    queue = iter(jobs)
    try:
        with DemoWriter(cfg.out, env_args=env_args, problem_info=problem_info) as writer, \
                make_pool("process", cfg.workers, num_workers=cfg.workers,
                          timeout_s=EPISODE_TIMEOUT_S) as pool, \
                tqdm(total=len(jobs), desc=f"collect {cfg.suite}", unit="ep",
                     file=sys.stderr) as bar:
            def submit_next(slot: int) -> None:
                job = next(queue, None)
                if job is not None:
                    request = (JOB_RUNNER, (job, cfg.cameras, cfg.image_size))
                    pending.append((pool.submit("call", {slot: request}), slot))

            for slot in range(cfg.workers):
                submit_next(slot)
            while pending:
                ticket, slot = pending.popleft()
                result = pool.result(ticket)[slot]
                if isinstance(result, Failure) and result.kind == "error":
                    raise RuntimeError(f"an expert episode raised: {result.message}")
                if isinstance(result, Failure):
                    raise WorkerCrash(
                        "a worker process died (crash or out of memory); "
                        "nothing was written") from RuntimeError(result.message)
                submit_next(slot)
                if result["success"]:
                    demo, dropped = _to_demo(result, cfg)
                    writer.add(demo)
                    written += 1
                    dropped_total += dropped
                    steps_total += len(result["actions"])
                else:
                    failures.append((result["job"], result["failure"]))
                bar.update(1)
                bar.set_postfix(ok=written, failed=len(failures))
            if written == 0:
                raise _NothingToWrite()
    except _NothingToWrite:
        print(f"collect: every expert episode failed; no file written to {cfg.out}",
              file=sys.stderr)
        _print_failures(failures)
        return 1
    except WorkerCrash as err:
        print(f"collect: error: {err} ({err.__cause__!r})", file=sys.stderr)
        return 1

    print(f"wrote {written} demos to {cfg.out} ({len(failures)} failed expert episodes "
          f"not written)")
    if cfg.idle_filter and steps_total:
        print(f"idle filter dropped {dropped_total} of {steps_total} steps "
              f"({100.0 * dropped_total / steps_total:.1f}%)")
    _print_failures(failures)
    return 0


class _NothingToWrite(Exception):
    pass


class WorkerCrash(RuntimeError):
    """A worker process died without returning (segfault, killed, out of memory)."""


def _print_failures(failures: list[tuple[Job, str]]) -> None:
    for job, reason in failures:
        print(f"  failed: {job.task_id} init {job.init_id} seed {job.seed}: {reason}")
