"""`smoothvla eval`: checkpoints x suite tasks x init states x perturbations x seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from smoothvla.errors import UserError, check_fields
from smoothvla.eval.results import ResultsFile, read_results
from smoothvla.eval.runner import EvalPlan, PolicyRef, check_plan, evaluate
from smoothvla.eval.summary import summarize
from smoothvla.io import check_writable_output
from smoothvla.policies.overrides import PolicyOverrides
from smoothvla.report.study_tables import cell_table
from smoothvla.report.tables import format_table
from smoothvla.report.video import results_video_dir
from smoothvla.rollout.execution import ExecutionConfig


@dataclass
class Config:
    checkpoints: tuple[str, ...]
    """Policies to evaluate: DIR, LABEL=DIR or LABEL@TRAIN_SEED=DIR."""
    suite: str = "tabletop-object"
    """Suite whose tasks are evaluated."""
    tasks: tuple[str, ...] = ()
    """Task ids or names within the suite (default: all)."""
    num_init_states: int = 10
    """Init states per task, starting at --first-init."""
    first_init: int = 0
    """First init state id."""
    seeds: tuple[int, ...] = (0,)
    """Env seeds (they drive perturbation randomness)."""
    perturbations: tuple[str, ...] = ("none",)
    """'none' (in distribution) and/or KIND or KIND@STRENGTH (see docs/envs.md)."""
    out: Path = Path("runs/eval/results.jsonl")
    """Results file (JSONL); re-running skips the episodes it already holds. A label whose
    rows there were acted with other settings (or come from another checkpoint) is refused,
    naming the difference: give the run its own label or pass --relabel."""
    workers: int = 2
    """Env worker processes (0: run the envs in this process)."""
    device: str = "auto"
    """Where the policy runs: 'auto' (CUDA when available), 'cpu', 'cuda'."""
    precision: str = "fp32"
    """'fp32' or 'bf16' (CUDA only: vision encoder and fusion under bf16 autocast)."""
    sample: bool = False
    """Sample actions instead of acting greedily (e.g. the tempered policy RL optimizes, with
    --overrides.temperature set to the rollout temperature RL trained with)."""
    sampling_seed: int = 0
    """Seed of sampled evaluation (--sample): each episode samples from a stream seeded by its
    task, init state, env seed, perturbation and this seed, so an interrupted and resumed run
    samples exactly the episodes an uninterrupted one would."""
    overrides: PolicyOverrides = field(default_factory=PolicyOverrides)
    """What to change in every checkpoint's policy config (unset: the checkpoint's), e.g.
    --overrides.flow-steps 30; recorded in every row, so part of its settings."""
    relabel: bool = False
    """When --out already holds rows of a label acted with other settings (or another
    checkpoint for the same training seed), store this run under LABEL[field=value,...]
    instead of refusing; the same command run again resumes into that label."""
    envs_per_worker: int = 2
    """Envs per worker; the policy is batched over all of them."""
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    """Which actions of each chunk run: chunk (all, as in RL), receding (the first
    --execution.steps, then a new chunk), blend, ensemble (ACT's temporal ensembling) or
    prefix (flow head). Give such runs their own label (docs/eval.md)."""
    record_paths: int = 1
    """Keep the end-effector path of the first N init states (path figures)."""
    video: int = 0
    """Record the first N episodes (init state x seed, in order) of every policy x task x
    perturbation as MP4 (H.264) with the step, instruction and success shown, in
    a folder beside --out (results.jsonl -> results_videos/). 0: no video, no cost."""
    video_camera: str = "agentview"
    """Camera the videos show."""
    max_steps: int = 0
    """Cap on episode length in control steps (0: each task's own limit). Capped rows are
    kept apart from uncapped ones (the cap is part of their settings)."""
    video_webp: bool = False
    """Also write each recorded video as an animated WebP beside its MP4 (small, for pages and
    slides that embed images; about as long to encode as the MP4, so off by default)."""

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise UserError("give at least one checkpoint")
        check_fields(self, flags=True, num_init_states=">= 1", first_init=">= 0", workers=">= 0",
                     envs_per_worker=">= 1", record_paths=">= 0", video=">= 0", max_steps=">= 0")
        # perturbations, tasks and init states: `check_plan` in `run`, per suite, before loading


def _check_overrides(cfg: Config, path: str) -> None:
    """Refuse overrides the checkpoint at `path` would ignore (`PolicyOverrides.check_head`)."""
    import json

    try:
        head = json.loads((Path(path) / "config.json").read_text())["config"]["head"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # load_policy reports a missing or corrupt checkpoint with its own message
    cfg.overrides.check_head(head, path, sampled=cfg.sample)


def _task_ids(cfg: Config) -> list[str]:
    from smoothvla.envs import list_tasks

    specs = list_tasks(cfg.suite)
    if not cfg.tasks:
        return [s.task_id for s in specs]
    by_name = {s.name: s.task_id for s in specs} | {s.task_id: s.task_id for s in specs}
    missing = [t for t in cfg.tasks if t not in by_name]
    if missing:
        raise UserError(f"--tasks: unknown tasks in {cfg.suite}: {missing}")
    return [by_name[t] for t in cfg.tasks]


def _policy_settings(cfg: Config) -> dict[str, object]:
    """Load-time overrides that change how the policy acts (recorded in every row)."""
    out: dict[str, object] = dict(cfg.overrides.as_dict())
    if cfg.precision != "fp32":
        out["precision"] = cfg.precision
    return out


def run(cfg: Config) -> int:
    from smoothvla.policies import load_policy, place

    torch.set_num_threads(1)
    check_writable_output(cfg.out, "file")
    plan = EvalPlan(
        task_ids=_task_ids(cfg),
        init_ids=range(cfg.first_init, cfg.first_init + cfg.num_init_states),
        seeds=cfg.seeds, perturbations=cfg.perturbations, record_paths=cfg.record_paths,
        videos=cfg.video, video_camera=cfg.video_camera, max_steps=cfg.max_steps,
        sample=cfg.sample, sampling_seed=cfg.sampling_seed,
        execution=cfg.execution, policy_settings=_policy_settings(cfg),
    )
    check_plan(plan)  # before any checkpoint loads or episode runs
    refs = [PolicyRef.parse(text) for text in cfg.checkpoints]
    for ref in refs:
        _check_overrides(cfg, ref.path)
    results = ResultsFile(cfg.out)
    for ref in refs:
        policy = place(load_policy(ref.path, **cfg.overrides.as_dict()), cfg.device,
                       cfg.precision)
        policy.eval()
        with torch.no_grad():
            evaluate(policy, ref, plan, results, workers=cfg.workers,
                     envs_per_worker=cfg.envs_per_worker, relabel=cfg.relabel)
    if not cfg.out.exists():
        raise UserError(f"no episode finished, so nothing was written to {cfg.out}; see the "
                        "env errors above")
    header, rows = cell_table(summarize(read_results([cfg.out])))
    keep = [header.index(h) for h in ("policy", "suite", "perturbation", "episodes", "success %",
                                      "95% CI", "drop", "mean jerk", "LDLJ", "SPARC")]
    print(format_table([[r[i] for i in keep] for r in rows], [header[i] for i in keep]))
    print(f"\nresults: {cfg.out}")
    if cfg.video:
        folder = results_video_dir(cfg.out)
        if cfg.video_webp:
            from smoothvla.report.video import find_videos, webp_from_mp4

            for video, where in find_videos(folder):
                webp = (where / video.mp4).with_suffix(".webp")
                if not webp.exists():  # a resumed evaluation converts only the new ones
                    webp_from_mp4(where / video.mp4, webp)
        print(f"videos: {folder}")
    return 0
