"""Evaluate policies over tasks x initial states x perturbations x seeds.

Episodes run greedily (`sample=False`; `EvalPlan.sample` samples instead, e.g. the tempered
policy that RL optimizes) through the same batched collector and worker pool as RL rollouts, one pool per perturbation (a perturbation is an env option). Each finished
batch of episodes is appended to the results file before the next starts, so a killed
evaluation loses at most one batch and, re-run, skips every episode already recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from smoothvla.errors import UserError
from smoothvla.eval.results import EpisodeResult, ResultsFile, continuous_grasp
from smoothvla.metrics import path_metrics
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.pool import EnvFactory, InProcessPool, ProcessPool
from smoothvla.rollout.trajectory import Trajectory


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
        return PolicyRef(label, path, seed)


@dataclass
class EvalPlan:
    """What to run: every (task, init state, seed) for every perturbation."""

    task_ids: Sequence[str]
    init_ids: Sequence[int]
    seeds: Sequence[int] = (0,)
    perturbations: Sequence[str] = ("none",)
    env_options: dict[str, Any] = field(default_factory=dict)
    record_paths: int = 1
    """Keep the end-effector path of the first N init states (for the path figures)."""
    sample: bool = False
    """Sample actions (seeded per batch of episodes) instead of acting greedily."""
    execute_steps: int = 0
    """Execute the first n actions of each chunk, then re-plan (0: the whole chunk)."""


def episode_result(traj: Trajectory, ref: PolicyRef, perturbation: str, keep_path: bool) -> EpisodeResult:
    """Metrics of one finished evaluation episode."""
    grasped, cont, first = (
        continuous_grasp(traj.is_grasping, traj.success) if traj.is_grasping is not None
        else (False, False, -1)
    )
    metrics: dict[str, float] = {}
    if len(traj.ee_pos) >= 4:
        metrics = path_metrics(traj.ee_pos, traj.control_dt, actions=traj.actions,
                               chunk_starts=traj.chunk_starts)
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
        ee_path=np.round(traj.ee_pos, 5).tolist() if keep_path else None,
    )


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
) -> list[EpisodeResult]:
    """Run the plan's missing episodes for one policy; returns the new results."""
    done = results.done_keys()
    new: list[EpisodeResult] = []
    keep = set(list(plan.init_ids)[: plan.record_paths])
    todo = {
        pert: [
            GroupRequest(task, init, seed, 1)
            for task in plan.task_ids for init in plan.init_ids for seed in plan.seeds
            if _key(ref, task, init, seed, pert) not in done
        ]
        for pert in plan.perturbations
    }
    total = sum(len(v) for v in todo.values())
    bar = tqdm(total=total, desc=f"eval {ref.label}", unit="ep", disable=not progress or total == 0)
    for pert, requests in todo.items():
        if not requests:
            continue
        options = dict(plan.env_options)
        if pert != "none":
            options["perturbation"] = pert
        num_envs = max(1, min(workers * envs_per_worker, len(requests)))
        pool = (InProcessPool(num_envs, env_factory=env_factory, env_options=options) if workers == 0
                else ProcessPool(num_envs, num_workers=workers, env_factory=env_factory,
                                 env_options=options))
        try:
            collector = Collector(policy, pool, sample=plan.sample,
                                  execute_steps=plan.execute_steps or None)
            for start in range(0, len(requests), batch_episodes):
                batch = requests[start : start + batch_episodes]
                out = collector.collect(batch, seed=start)
                records = [episode_result(t, ref, pert, t.init_id in keep) for t in out.trajectories]
                for r in records:
                    results.append(r)
                new += records
                if on_batch:
                    on_batch(records)
                bar.update(len(batch))
                lost = len(batch) - len(out.trajectories)
                if lost:
                    bar.write(f"eval {ref.label}: {lost} episode(s) lost to env failures "
                              f"({'; '.join(out.errors[:2])}); re-run to retry them")
        finally:
            pool.close()
    bar.close()
    return new


def _key(ref: PolicyRef, task: str, init: int, seed: int, pert: str) -> tuple:
    kind, _, strength = pert.partition("@")
    s = float(strength) if strength else (0.0 if kind == "none" else 0.5)
    return (ref.label, ref.train_seed, task, init, seed, kind, s)
