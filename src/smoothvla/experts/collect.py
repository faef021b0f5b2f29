"""Scripted-expert demonstrations into a LIBERO-layout HDF5 file: `collect_demos(cfg)`, what
`smoothvla collect` and the study run.

Episodes run in the worker processes of a `rollout.pool` pool (`make_pool("process")`, no
torch, one OpenMP thread each; op "call" runs `JOB_RUNNER` there); the main
process writes successful ones in a fixed order (task by task, init state by init state),
so the same flags give the same file whatever the number of workers. Failed expert episodes
are counted and printed, never written. The file appears at `--out` only when every
episode has been handled (`DemoWriter` writes to a temporary name and renames).

Resuming: each finished episode is made durable at once in the folder `OUT.parts/` (created
with the first one): `NNNNNN.hdf5` (the demo, job number NNNNNN, written atomically) or
`NNNNNN.failed.json` (a failed expert episode), next to `config.json`, the settings that
decide the demos. A killed run loses only the episodes in flight; `--resume` checks the
settings against `config.json`, runs only the missing jobs and assembles the file from the
parts in job order, the same demos as an uninterrupted run. The folder is removed once the
file is in place.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import sys
from collections import deque
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothvla.errors import UserError, check_fields
from smoothvla.io import (
    _pid_alive,
    atomic_path,
    atomic_write_json,
    check_writable_output,
    remove_stale_temp_files,
)
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
    """Successful-or-not episodes attempted per task, on init states 0, 1, ... (cycled;
    shifted by `init_offset`)."""
    init_offset: int = 0
    """Episode i of a task starts from init state `init_offset + (i mod the suite's fixed
    states)`. On LIBERO the 50 official states (0-49) are what its evaluation uses, and ids
    from 50 on are layouts that LIBERO's own placement samples (docs/libero.md): 50 keeps
    the official states out of the demonstrations. The tabletop suites have 50 states
    only, so 0 there."""
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
    resume: bool = False
    """Finish a killed run: keep the episodes in `OUT.parts/`, run only the missing ones.
    Without it an existing output file or parts folder is refused."""

    def validate(self) -> None:
        """Clear errors for bad values (called by `collect_demos`, so the CLI reports them
        cleanly)."""
        check_fields(self, episodes_per_task="> 0", init_offset=">= 0", workers="> 0",
                     image_size=">= 8",
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
    """One job per episode, task-major; init states cycle when episodes exceed them. A
    UserError when `init_offset` asks for init ids a suite does not have."""
    jobs = []
    for spec in specs:
        n_init = max(1, int(spec.num_init_states))
        last = cfg.init_offset + min(cfg.episodes_per_task, n_init) - 1
        if last >= n_init and not spec.samples_init_states:
            raise UserError(f"--init-offset {cfg.init_offset}: {spec.suite} has init states "
                            f"0-{n_init - 1} only (init ids past them are sampled layouts on "
                            "LIBERO); use 0")
        for i in range(cfg.episodes_per_task):
            jobs.append(Job(spec.task_id, i, cfg.init_offset + i % n_init, cfg.seed + i))
    return jobs


# ----- worker side -----

_ENV: dict[str, Any] = {}


def _close_envs() -> None:
    for env in _ENV.values():
        env.close()
    _ENV.clear()


def _get_env(task_id: str, cameras: tuple[str, ...], image_size: int) -> Any:
    from smoothvla.envs import make

    key = f"{task_id}|{cameras}|{image_size}"
    if key not in _ENV:
        _close_envs()
        _ENV[key] = make(task_id, cameras=cameras, image_size=image_size)
        # Closed at exit before robosuite's own exit hook, registered by the first env,
        # terminates EGL (hooks run last registered first): a LIBERO render context freed
        # after that fails, with a traceback on stderr.
        atexit.unregister(_close_envs)
        atexit.register(_close_envs)
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
    reasons are printed). With `cfg.resume`, the episodes already in `OUT.parts/` are taken
    from there instead of being run again."""
    from tqdm import tqdm

    from smoothvla.data.hdf5 import DemoWriter

    cfg.validate()
    cfg.out = check_writable_output(cfg.out, "file")
    specs = resolve_tasks(cfg)
    jobs = make_jobs(cfg, specs)
    parts = parts_folder(cfg.out)
    settings = resume_settings(cfg, specs)
    done = _check_resume(cfg, parts, settings, jobs)
    remove_stale_temp_files(cfg.out.parent, cfg.out.name)  # left by a killed earlier run
    env_args = dict(env_name=cfg.suite, type="smoothvla-tabletop",
                    env_kwargs=dict(cameras=list(cfg.cameras), image_size=cfg.image_size))
    problem_info = dict(problem_name=cfg.suite, tasks={s.task_id: s.instruction for s in specs},
                        language_instruction=specs[0].instruction if len(specs) == 1 else "")
    failures: list[tuple[Job, str]] = []
    written = dropped_total = steps_total = 0
    if done:
        print(f"collect: --resume: {len(done)} of {len(jobs)} episodes already done in {parts}",
              file=sys.stderr)

    # Spawned children inherit the environment: one OpenMP thread each. One worker per slot
    # of the pool; each slot runs one episode at a time (op "call"), results in job order.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    pending: deque[tuple[int, int]] = deque()  # (ticket, slot)
    queue = iter([(i, job) for i, job in enumerate(jobs) if i not in done])
    todo = len(jobs) - len(done)
    try:
        with DemoWriter(cfg.out, env_args=env_args, problem_info=problem_info) as writer, \
                (make_pool("process", min(cfg.workers, todo), num_workers=min(cfg.workers, todo),
                           timeout_s=EPISODE_TIMEOUT_S) if todo else nullcontext()) as pool, \
                tqdm(total=len(jobs), desc=f"collect {cfg.suite}", unit="ep",
                     file=sys.stderr) as bar:
            def submit_next(slot: int) -> None:
                item = next(queue, None)
                if item is not None:
                    request = (JOB_RUNNER, (item[1], cfg.cameras, cfg.image_size))
                    pending.append((pool.submit("call", {slot: request}), slot))

            for slot in range(min(cfg.workers, todo)):
                submit_next(slot)
            # Job order, whether an episode comes from the parts folder or a worker: the
            # file is the same however often the run was interrupted.
            for index, job in enumerate(jobs):
                if index in done:
                    demo, reason = _read_part(parts, index, job, done[index])
                else:
                    ticket, slot = pending.popleft()
                    result = pool.result(ticket)[slot]
                    if isinstance(result, Failure) and result.kind == "error":
                        raise RuntimeError(f"an expert episode raised: {result.message}")
                    if isinstance(result, Failure):
                        raise WorkerCrash(
                            "a worker process died (crash or out of memory); "
                            "nothing was written") from RuntimeError(result.message)
                    submit_next(slot)
                    demo, reason = None, result["failure"]
                    if result["success"]:
                        demo = _to_demo(result, cfg)[0]
                    _save_part(parts, settings, index, job, demo, reason)
                if demo is not None:
                    writer.add(demo)
                    written += 1
                    dropped = int(demo.attrs["idle_dropped"])
                    dropped_total += dropped
                    steps_total += len(demo.actions) + dropped
                else:
                    failures.append((job, reason))
                bar.update(1)
                bar.set_postfix(ok=written, failed=len(failures))
            if written == 0:
                raise _NothingToWrite()
    except _NothingToWrite:
        shutil.rmtree(parts, ignore_errors=True)  # every episode handled: nothing to resume
        print(f"collect: every expert episode failed; no file written to {cfg.out}",
              file=sys.stderr)
        _print_failures(failures)
        return 1
    except WorkerCrash as err:
        print(f"collect: error: {err} ({err.__cause__!r})", file=sys.stderr)
        if parts.exists():
            print(f"collect: the finished episodes are kept in {parts}; rerun with --resume "
                  "to run only the others", file=sys.stderr)
        return 1
    shutil.rmtree(parts, ignore_errors=True)

    print(f"wrote {written} demos to {cfg.out} ({len(failures)} failed expert episodes "
          f"not written)")
    if cfg.idle_filter and steps_total:
        print(f"idle filter dropped {dropped_total} of {steps_total} steps "
              f"({100.0 * dropped_total / steps_total:.1f}%)")
    _print_failures(failures)
    return 0


# ----- resuming -----

PARTS_FORMAT = 1
"""Version of the `OUT.parts/` layout, stored in its config.json."""

_PART_NAME = re.compile(r"^(\d{6})\.(hdf5|failed\.json)$")
_ATOMIC_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]+\.tmp$")


def parts_folder(out: Path) -> Path:
    """`OUT.parts/` beside the output file: the finished episodes of an unfinished run."""
    return out.with_name(out.name + ".parts")


def _part_path(parts: Path, index: int) -> Path:
    return parts / f"{index:06d}.hdf5"


def _failed_path(parts: Path, index: int) -> Path:
    return parts / f"{index:06d}.failed.json"


def resume_settings(cfg: CollectConfig, specs: list[Any]) -> dict[str, Any]:
    """The settings that decide which episodes run and what their demos hold (not `out`,
    `workers` or `resume`): what `OUT.parts/config.json` stores and `--resume` compares."""
    return dict(
        format=PARTS_FORMAT, suite=cfg.suite, tasks=[s.task_id for s in specs],
        episodes_per_task=cfg.episodes_per_task, init_offset=cfg.init_offset,
        cameras=list(cfg.cameras),
        image_size=cfg.image_size, seed=cfg.seed, idle_filter=cfg.idle_filter,
        idle_pos_threshold=cfg.idle_pos_threshold, idle_rot_threshold=cfg.idle_rot_threshold)


def _check_resume(cfg: CollectConfig, parts: Path, settings: dict[str, Any],
                  jobs: list[Job]) -> dict[int, str]:
    """UserError for an output that this run may not write; the finished jobs of a resumed
    run ({job index: 'demo' or 'failed'}). Called before any work."""
    out = cfg.out
    if not cfg.resume:
        for path, what in ((out, "file"), (parts, "folder of a killed run's episodes")):
            if path.exists():
                raise UserError(f"{path} exists ({what}); pass --resume to finish that run, or "
                                "remove it or choose another --out")
        return {}
    if not parts.exists():
        if out.exists():
            raise UserError(f"--resume: {out} is complete (there is no {parts.name} folder "
                            "to resume); remove it to collect again")
        print(f"collect: --resume: no {parts}; starting a new collection", file=sys.stderr)
        return {}
    if not parts.is_dir():
        raise UserError(f"{parts} is not a folder")
    try:
        stored = json.loads((parts / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{parts}/config.json: missing or unreadable ({err}); remove {parts} "
                        "to start over") from None
    stored.setdefault("init_offset", 0)  # parts written before the option existed
    changed = [f"--{key.replace('_', '-')}: {stored.get(key)!r} in {parts.name}, {value!r} now"
               for key, value in settings.items() if stored.get(key) != value]
    if changed:
        raise UserError("--resume with other settings than the interrupted run: "
                        + "; ".join(changed) + f" (remove {parts} to start over)")
    done: dict[int, str] = {}
    for entry in parts.iterdir():
        match = _PART_NAME.match(entry.name)
        if match:
            index = int(match[1])
            if index >= len(jobs) or index in done:
                raise UserError(f"{entry}: not a part of this collection ({len(jobs)} jobs)")
            done[index] = "demo" if match[2] == "hdf5" else "failed"
        else:
            temp = _ATOMIC_TEMP.match(entry.name)
            if temp and not _pid_alive(int(temp[1])):
                entry.unlink(missing_ok=True)  # a part being written when the run was killed
    return done


def _save_part(parts: Path, settings: dict[str, Any], index: int, job: Job, demo: Any,
               reason: str | None) -> None:
    """Make the finished job `index` durable: its demo (or, with `demo` None, its failure) as
    one atomically written file in `parts`. The folder appears, with its config.json, in one
    rename with the first finished job."""
    from smoothvla.data.hdf5 import write_demo_file

    if not parts.exists():
        with atomic_path(parts, folder=True) as tmp:
            atomic_write_json(tmp / "config.json", settings)
    if demo is not None:
        write_demo_file(_part_path(parts, index), demo)
    else:
        atomic_write_json(_failed_path(parts, index), dict(job=asdict(job), failure=str(reason)))


def _read_part(parts: Path, index: int, job: Job, kind: str):
    """(Demo, None) or (None, failure reason) for a job finished by an earlier run."""
    from smoothvla.data.hdf5 import read_demo

    if kind == "failed":
        path = _failed_path(parts, index)
        record = json.loads(path.read_text(encoding="utf-8"))
        demo, reason, stored = None, str(record["failure"]), Job(**record["job"])
    else:
        path = _part_path(parts, index)
        demo, reason = read_demo(path, "demo_0"), None
        demo.attrs.pop("num_samples")  # DemoWriter.add sets it again
        stored = Job(str(demo.attrs["task_id"]), job.episode, int(demo.attrs["init_id"]),
                     int(demo.attrs["seed"]))
    if stored != job:
        raise UserError(f"{path}: holds {stored}, expected {job}; remove {parts} to start over")
    return demo, reason


class _NothingToWrite(Exception):
    pass


class WorkerCrash(RuntimeError):
    """A worker process died without returning (segfault, killed, out of memory)."""


def _print_failures(failures: list[tuple[Job, str]]) -> None:
    for job, reason in failures:
        print(f"  failed: {job.task_id} init {job.init_id} seed {job.seed}: {reason}")
