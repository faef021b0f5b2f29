"""Evaluate policies over tasks x initial states x perturbations x seeds.

Episodes run greedily (`sample=False`; `EvalPlan.sample` samples instead, e.g. the tempered
policy that RL optimizes) through the same batched collector and worker pool as RL rollouts,
one pool per perturbation (a perturbation is an env option). Each finished batch of episodes
is appended to the results file before the next starts, so a killed evaluation loses at most
one batch and, re-run, skips every episode already recorded.

Every row carries the checkpoint's content hash and the plan's settings (`EvalPlan.settings`),
and both are part of its key. A label whose rows in the file were acted with other settings,
or come from another checkpoint for the same training seed, is refused before any episode
runs (the message names what differs); `relabel=True` stores the run under
`LABEL[field=value,...]` instead. The plan is checked before anything runs (`check_plan`).

Videos (`EvalPlan.videos` = N > 0): the first N (init state, seed) pairs of every task, in
the plan's order, are recorded in every perturbation, so every policy evaluated with the same
plan records the same episodes (a side-by-side view needs that). Only those episodes carry
frames back from the workers; each is written as MP4 and a JSON sidecar under
`results_video_dir(results file)` (report/video.py) as soon as its batch finishes, and its row
keeps the path and jerk trace (as `record_paths` does). An episode already in the results
file is not re-run, so it gets no video.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from smoothvla.errors import UserError
from smoothvla.eval.results import EpisodeResult, ResultsFile, continuous_grasp, settings_key
from smoothvla.eval.sampling import EpisodeSeededFactory, EpisodeSeededPolicy
from smoothvla.metrics import path_metrics
from smoothvla.metrics.attribution import SPLIT_KEYS, gripper_events, jerk_trace
from smoothvla.policies.packaged import resolve_checkpoint
from smoothvla.report.video import results_video_dir
from smoothvla.rollout.collector import CollectResult, Collector, GroupRequest
from smoothvla.rollout.execution import ExecutionConfig
from smoothvla.rollout.pool import EnvFactory, make_pool
from smoothvla.trajectory import Trajectory


@dataclass(frozen=True)
class PolicyRef:
    """A policy to evaluate: `label` names it in results; `train_seed` tells seeds apart."""

    label: str
    path: str
    train_seed: int = 0

    @staticmethod
    def parse(text: str) -> "PolicyRef":
        """`DIR`, `LABEL=DIR` or `LABEL@SEED=DIR` (label defaults to the folder name)."""
        label, sep, path = text.partition("=")
        if not sep:
            label, path = Path(text).name, text
        seed = 0
        if "@" in label:
            label, _, seed_text = label.partition("@")
            if not seed_text.isdigit():
                raise UserError(f"bad training seed in {text!r}: use LABEL@SEED=DIR")
            seed = int(seed_text)
        if not label or not path:
            raise UserError(f"bad checkpoint {text!r}: use DIR, LABEL=DIR or LABEL@SEED=DIR")
        return PolicyRef(label, resolve_checkpoint(path), seed)


_GRID = ("task_ids", "init_ids", "seeds", "perturbations", "record_paths", "videos",
         "video_camera")
"""EvalPlan fields that say which episodes to run and what to keep of them; every other field
is a setting."""


@dataclass
class EvalPlan:
    """What to run: every (task, init state, seed) for every perturbation, and how.

    Every field outside `_GRID` is a setting: it changes how episodes are acted, so it is
    stored in each row and is part of the row's key (`settings()`). A new field added here
    joins the key without other changes; give it the old behaviour as its default and old
    results keep their keys."""

    task_ids: Sequence[str]
    init_ids: Sequence[int]
    seeds: Sequence[int] = (0,)
    perturbations: Sequence[str] = ("none",)
    env_options: dict[str, Any] = field(default_factory=dict)
    """Options for every env (e.g. cameras, image size)."""
    record_paths: int = 1
    """Keep the end-effector path of the first N init states (for the path figures)."""
    videos: int = 0
    """Record the first N (init state, seed) episodes of every task and perturbation as
    videos (0: none, and no frames leave the workers)."""
    video_camera: str = "agentview"
    """Camera the videos show (one of the env's `cameras`)."""
    sample: bool = False
    """Sample actions instead of acting greedily; each episode's samples are seeded by its
    own key and `sampling_seed` (`smoothvla.eval.sampling`)."""
    sampling_seed: int = 0
    """Seed of sampled evaluation (unused when greedy)."""
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    """Which actions of the chunks run (whole chunks, receding horizon, blending, temporal
    ensembling, prefix conditioning: rollout/execution.py)."""
    max_steps: int = 0
    """Cap on episode length in control steps (0: each task's own limit). A capped episode is
    another measurement: a non-zero cap is part of the row's settings, so of its key."""
    policy_settings: dict[str, Any] = field(default_factory=dict)
    """How the policy was configured when loaded, where that changes how it acts (e.g.
    {"temperature": 0.2, "flow_steps": 30}); recorded in the rows, not applied here."""

    def settings(self) -> dict[str, Any]:
        """The canonical settings dict stored in every row: the setting fields whose value
        is not their default, `policy_settings` merged in at the top level, the sampling
        seed only when sampling; JSON types (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if f.name in _GRID or value == default:
                continue
            if f.name == "sampling_seed" and not self.sample:
                continue
            if f.name == "policy_settings":
                clash = sorted(set(value) & {g.name for g in fields(self)})
                if clash:
                    raise ValueError(f"policy_settings may not repeat plan fields {clash}")
                out.update(value)
            elif isinstance(value, ExecutionConfig):  # flat, so relabels stay readable
                out.update({f"execution.{k}": v for k, v in value.settings().items()})
            else:
                out[f.name] = value
        return json.loads(json.dumps(out, sort_keys=True, default=str))


def episode_result(traj: Trajectory, ref: PolicyRef, perturbation: str, keep_path: bool) -> EpisodeResult:
    """Metrics of one finished evaluation episode."""
    grasped, cont, first = (
        continuous_grasp(traj.is_grasping, traj.success) if traj.is_grasping is not None
        else (False, False, -1)
    )
    gripper = traj.actions[:, 6] if traj.actions.shape[1] == 7 else None
    metrics: dict[str, float] = {}
    if len(traj.ee_pos) >= 4:
        metrics = path_metrics(traj.ee_pos, traj.control_dt, actions=traj.actions,
                               chunk_starts=traj.chunk_starts, gripper_actions=gripper,
                               grasping=traj.is_grasping)
    keep_starts = keep_path and traj.chunk_starts is not None
    keep_events = keep_path and (gripper is not None or traj.is_grasping is not None)
    kind, _, strength = perturbation.partition("@")
    return EpisodeResult(
        policy=ref.label, train_seed=ref.train_seed, task_id=traj.task_id,
        suite=traj.task_id.partition("/")[0], init_id=traj.init_id, seed=traj.seed,
        perturbation=kind, strength=float(strength) if strength else (0.0 if kind == "none" else 0.5),
        success=traj.success, grasp=grasped, cont_grasp=cont, grasp_step=first,
        steps=traj.num_steps,
        mean_jerk=metrics.get("mean_jerk", math.nan), ldlj=metrics.get("ldlj", math.nan),
        sparc=metrics.get("sparc", math.nan), path_length=metrics.get("path_length", math.nan),
        chunk_jump=metrics.get("chunk_jump", math.nan),
        **{k: metrics.get(k, math.nan) for k in SPLIT_KEYS},
        ee_path=np.round(traj.ee_pos, 5).tolist() if keep_path else None,
        chunk_start_steps=np.flatnonzero(traj.chunk_starts).tolist() if keep_starts else None,
        event_steps=gripper_events(gripper, traj.is_grasping).tolist() if keep_events else None,
        jerk_trace=(np.round(jerk_trace(traj.ee_pos, traj.control_dt)[1], 4).tolist()
                    if keep_path and metrics else None),
    )


def write_video(traj: Trajectory, ref: PolicyRef, perturbation: str, folder: str | Path) -> Path:
    """Write a recorded episode (`traj.extras` with frames, frame_success, camera) as
    `video_stem(folder, ...)`.mp4/.json; returns the MP4's path."""
    from smoothvla.report.video import video_stem, write_episode_video

    kind, strength = _strength(perturbation)
    stem = video_stem(folder, ref.label, ref.train_seed, traj.task_id, kind, strength,
                      traj.init_id, traj.seed)
    write_episode_video(stem, traj.extras["frames"], traj.extras["frame_success"], dict(
        policy=ref.label, train_seed=ref.train_seed, task_id=traj.task_id, init_id=traj.init_id,
        seed=traj.seed, perturbation=kind, strength=strength, success=traj.success,
        fps=1.0 / traj.control_dt, camera=traj.extras["camera"],
        instruction=str(traj.extras.get("instruction", ""))))
    return stem.with_suffix(".mp4")


def evaluate(
    policy: Any,
    ref: PolicyRef,
    plan: EvalPlan,
    results: ResultsFile,
    *,
    workers: int = 2,
    envs_per_worker: int = 2,
    batch_episodes: int = 8,
    env_factory: EnvFactory | None = None,
    progress: bool = True,
    on_batch: Callable[[list[EpisodeResult]], None] | None = None,
    relabel: bool = False,
) -> list[EpisodeResult]:
    """Run the plan's missing episodes for one policy; returns the rows it stored.

    Raises UserError before any episode runs for a bad plan (`check_plan`; task ids, init
    states and perturbation kinds are checked against the suite registry unless
    `env_factory` is given) and when `results` holds rows of `ref.label` acted otherwise
    (`relabel`: store this run under a label that names the difference instead)."""
    check_plan(plan, registry=env_factory is None)
    settings = plan.settings()
    checkpoint = checkpoint_digest(ref.path)
    rows = results.read()
    label = _label(rows, ref, checkpoint, settings, results.path, relabel)
    run_ref = PolicyRef(label, ref.path, ref.train_seed)
    done = {r.key for r in rows}
    new: list[EpisodeResult] = []
    keep = set(list(plan.init_ids)[: plan.record_paths])
    filmed = set(list(itertools.product(plan.init_ids, plan.seeds))[: plan.videos])
    todo = {
        pert: [
            GroupRequest(task, init, seed, 1,
                         plan.video_camera if (init, seed) in filmed else None)
            for task in plan.task_ids for init in plan.init_ids for seed in plan.seeds
            if _key(run_ref, checkpoint, settings, task, init, seed, pert) not in done
        ]
        for pert in plan.perturbations
    }
    total = sum(len(v) for v in todo.values())
    bar = tqdm(total=total, desc=f"eval {label}", unit="ep", disable=not progress or total == 0)
    for pert, requests in todo.items():
        for batch, out in run_episodes(policy, plan, pert, requests, workers=workers,
                                       envs_per_worker=envs_per_worker,
                                       batch_episodes=batch_episodes, env_factory=env_factory):
            records = [episode_result(t, run_ref, pert, t.init_id in keep or "frames" in t.extras)
                       for t in out.trajectories]
            for t in out.trajectories:
                if "frames" in t.extras:
                    write_video(t, run_ref, pert, results_video_dir(results.path))
            for r in records:
                r.checkpoint, r.settings = checkpoint, settings
            new += results.append_new(records)
            if on_batch:
                on_batch(records)
            bar.update(len(batch))
            lost = len(batch) - len(out.trajectories)
            if lost:
                bar.write(f"eval {label}: {lost} episode(s) lost to env failures "
                          f"({'; '.join(out.errors[:2])}); re-run to retry them")
    bar.close()
    return new


def run_episodes(
    policy: Any,
    plan: EvalPlan,
    perturbation: str,
    requests: list[GroupRequest],
    *,
    workers: int = 2,
    envs_per_worker: int = 2,
    batch_episodes: int = 8,
    env_factory: EnvFactory | None = None,
) -> Iterator[tuple[list[GroupRequest], CollectResult]]:
    """Run `requests` (one episode each) as `plan` says (greedy or sampled, execution scheme,
    episode cap, env options) under `perturbation`, on one pool of envs (in this process
    when `workers` is 0) through the batched collector, `batch_episodes` at a time; yields
    each batch with its `CollectResult`. The episodes of `evaluate`, and of SFT's evaluation
    during training (algorithms/sft.py): the same requests give the same episodes."""
    if not requests:
        return
    options = dict(plan.env_options)
    if perturbation != "none":
        options["perturbation"] = perturbation
    factory, actor = env_factory, policy
    if plan.sample:  # each episode samples from its own stream (smoothvla.eval.sampling)
        factory = EpisodeSeededFactory(env_factory, *_strength(perturbation), plan.sampling_seed)
        actor = EpisodeSeededPolicy(policy)
    num_envs = max(1, min(max(workers, 1) * envs_per_worker, len(requests)))
    with make_pool("process" if workers > 0 else "inprocess", num_envs,
                   num_workers=workers or None, env_factory=factory, env_options=options) as pool:
        # sampled episodes act alone (EpisodeSeededPolicy): they may start in any order
        collector = Collector(actor, pool, sample=plan.sample, execution=plan.execution,
                              max_steps=plan.max_steps or None, any_order=plan.sample)
        for start in range(0, len(requests), batch_episodes):
            batch = requests[start : start + batch_episodes]
            yield batch, collector.collect(batch, seed=start)


def _strength(pert: str) -> tuple[str, float]:
    """(kind, strength) of 'none', 'KIND' (strength 0.5) or 'KIND@STRENGTH'."""
    kind, _, strength = pert.partition("@")
    return kind, float(strength) if strength else (0.0 if kind == "none" else 0.5)


def _key(ref: PolicyRef, checkpoint: str, settings: dict[str, Any], task: str, init: int,
         seed: int, pert: str) -> tuple:
    kind, strength = _strength(pert)
    return (ref.label, ref.train_seed, checkpoint, settings_key(settings), task, init, seed,
            kind, strength)


# -- checkpoint identity and label conflicts -----------------------------------------------

POLICY_FILES = ("config.json", "model.safetensors", "normalizer.json", "smoothvla_adapter.json",
                "smoothvla_value_head.safetensors")
"""The files that define a saved policy (`CompactVLA.save`, `LeRobotSmolVLA.save`, whose
LeRobot processor files `policy_*processor*` with the normalization statistics count too);
training state beside them (optimizer, trainer state) does not change how it acts and is not
hashed."""


def checkpoint_digest(path: str | Path) -> str:
    """Content hash of a checkpoint: sha256 over the names and bytes of its `POLICY_FILES`
    (every file of the folder when it has none of them; the file itself for a file), first
    16 hex digits. UserError when the path does not exist."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = [path / n for n in POLICY_FILES if (path / n).is_file()]
        files += sorted(f for f in path.glob("policy_*processor*") if f.is_file())
        files = files or sorted(f for f in path.rglob("*") if f.is_file())
    else:
        raise UserError(f"{path}: no such checkpoint")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _value(settings: dict[str, Any], name: str) -> str:
    if name not in settings:
        return "default"
    value = settings[name]
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _differences(rows: list[EpisodeResult], ref: PolicyRef, checkpoint: str,
                 settings: dict[str, Any]) -> dict[str, str]:
    """{field: 'stored X, now Y'} between this run and the rows stored under its label:
    settings must agree over the whole label, the checkpoint per training seed."""
    diffs: dict[str, str] = {}
    for r in rows:
        if r.policy != ref.label:
            continue
        if r.settings is None:
            diffs["settings"] = "stored unknown (rows written before settings were recorded)"
        else:
            for name in sorted(set(r.settings) | set(settings)):
                if r.settings.get(name) != settings.get(name) and name not in diffs:
                    diffs[name] = (f"stored {_value(r.settings, name)}, "
                                   f"now {_value(settings, name)}")
        if r.train_seed == ref.train_seed and r.checkpoint != checkpoint:
            diffs.setdefault("checkpoint", f"stored {r.checkpoint or 'unknown'}, now {checkpoint} "
                                           f"(training seed {ref.train_seed})")
    return diffs


def _label(rows: list[EpisodeResult], ref: PolicyRef, checkpoint: str, settings: dict[str, Any],
           path: Path, relabel: bool) -> str:
    """The label this run stores its rows under: `ref.label`, or with `relabel` and rows of
    that label acted otherwise, `LABEL[field=value,...]` naming the differing fields."""
    diffs = _differences(rows, ref, checkpoint, settings)
    if not diffs:
        return ref.label
    names = [n for n in diffs if n not in ("settings", "checkpoint")]
    if "settings" in diffs:
        names = sorted(settings) or ["settings"]
    parts = [f"{n}={_value(settings, n)}" for n in names]
    if "checkpoint" in diffs:
        parts.append(f"checkpoint={checkpoint[:8]}")
    derived = f"{ref.label}[{','.join(parts)}]"
    if relabel:
        ref = PolicyRef(derived, ref.path, ref.train_seed)
        diffs = _differences(rows, ref, checkpoint, settings)
        if not diffs:
            return derived
    count = sum(r.policy == ref.label for r in rows)
    detail = "; ".join(f"{n}: {d}" for n, d in diffs.items())
    raise UserError(
        f"{path} already holds {count} episode(s) of '{ref.label}' acted otherwise ({detail}). "
        f"Give this run its own label (LABEL=DIR) or pass --relabel to store it as '{derived}'"
        + (" (that label is taken too)" if relabel else ""))


# -- checking a plan before anything runs ------------------------------------------------------

def suite_perturbations(suite: str) -> list[str] | None:
    """The perturbation kinds a suite implements; None for suites not known here."""
    if suite.startswith("tabletop-"):
        from smoothvla.envs.tabletop.perturbations import list_perturbations

        return list_perturbations()
    if suite.startswith("libero-"):
        from smoothvla.envs.libero.perturb import SUPPORTED

        return list(SUPPORTED)
    return None


def check_plan(plan: EvalPlan, *, registry: bool = True) -> None:
    """UserError, naming the `smoothvla eval` flag, for anything that would fail inside the
    workers: negative seeds or init states, a perturbation that does not parse or whose
    strength is outside [0, 1]; with `registry`, also unknown task ids, init states beyond
    a task's and perturbation kinds its suite does not implement."""
    if not plan.task_ids:
        raise UserError("--tasks: no task to evaluate")
    inits = list(plan.init_ids)
    if not inits:
        raise UserError("--num-init-states: no init state to evaluate")
    if any(not isinstance(i, numbers.Integral) or i < 0 for i in inits):
        raise UserError(f"--first-init: init state ids must be integers >= 0, got {min(inits)}")
    if not plan.seeds or any(not isinstance(s, numbers.Integral) or s < 0 for s in plan.seeds):
        raise UserError(f"--seeds: env seeds must be integers >= 0, got {list(plan.seeds)}")
    if plan.sampling_seed < 0:
        raise UserError(f"--sampling-seed must be >= 0, got {plan.sampling_seed}")
    if not isinstance(plan.max_steps, numbers.Integral) or plan.max_steps < 0:
        raise UserError(f"--max-steps must be an integer >= 0 (0: the task's limit), got "
                        f"{plan.max_steps}")
    if not isinstance(plan.videos, numbers.Integral) or plan.videos < 0:
        raise UserError(f"--video: episodes to record per cell must be an integer >= 0, got "
                        f"{plan.videos}")
    cameras = plan.env_options.get("cameras")
    if plan.videos and cameras is not None:
        cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        if plan.video_camera not in cameras:
            raise UserError(f"--video-camera {plan.video_camera!r}: the envs render only "
                            f"{list(cameras) or 'no camera'}")
    if not plan.perturbations:
        raise UserError("--perturbations: nothing to evaluate (use 'none' for in distribution)")
    kinds = []
    for pert in plan.perturbations:
        kind, sep, text = pert.partition("@")
        try:
            _, strength = _strength(pert)
        except ValueError:
            raise UserError(f"--perturbations: bad strength in {pert!r}: use KIND or "
                            "KIND@STRENGTH with STRENGTH a number in [0, 1]") from None
        if not kind or (kind == "none" and sep):
            raise UserError(f"--perturbations: bad perturbation {pert!r}: use 'none', KIND or "
                            "KIND@STRENGTH")
        if not (0.0 <= strength <= 1.0):
            raise UserError(f"--perturbations: strength of {pert!r} must be in [0, 1]")
        kinds.append(kind)
    if not registry:
        return
    from smoothvla.envs import get_task

    for task in plan.task_ids:
        try:
            spec = get_task(task)
        except ValueError as err:
            raise UserError(f"--tasks: {err}") from None
        if max(inits) >= spec.num_init_states:
            raise UserError(
                f"--first-init/--num-init-states: init states {min(inits)}..{max(inits)} asked, "
                f"but {task} has {spec.num_init_states} (ids 0..{spec.num_init_states - 1})")
        known = suite_perturbations(spec.suite)
        bad = [k for k in kinds if k != "none" and known is not None and k not in known]
        if bad:
            raise UserError(f"--perturbations: unknown perturbation {bad[0]!r} for "
                            f"{spec.suite}; known: {', '.join(known)}")
