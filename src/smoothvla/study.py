"""The study: demonstrations -> SFT -> RL variants -> evaluation -> report, resumable.

Every stage writes into `out/` and leaves a `.done` marker when it has finished; a re-run
skips finished stages and resumes the unfinished one (SFT and RL from their checkpoints,
evaluation from its results file), so interrupting `smoothvla demo` and running it again
continues rather than restarting. The config (`StudyConfig`) nests the `smoothvla sft` and
`smoothvla train` configs as its `sft` and `train` tables; `out/study.json` keeps it, and a
resumed study may change only `RESUME_MAY_CHANGE`.

    out/study.json                 the study's config
    out/demos.hdf5                 expert demonstrations (LIBERO layout)
    out/jerk_scale.json            the experts' mean jerk: the unit of the smooth reward
    out/sft-s{seed}/               SFT run; its final policy is the start of every RL run
    out/{method}-s{seed}/          RL run: log.jsonl, checkpoint/, policy/
    out/results.jsonl              evaluation episodes
    out/report/                    report.md, report.tex, report.html, figures/
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from smoothvla.algorithms.finetune import FinetuneConfig
from smoothvla.algorithms.sft import SFTConfig
from smoothvla.errors import UserError, UserFileNotFoundError, check_fields, check_parses
from smoothvla.io import atomic_write_json

# Method label -> (algorithm, reward, smoothness credit). "sft" is the starting checkpoint
# itself. smoothvla-* use eq. 5 of the SmoothVLA paper as published; the credit variants
# (docs/rl.md, "Smoothness credit") pay for smoothness through the advantage instead, on the
# binary reward: GRPO's decoupled or per-chunk advantage, PPO's dense per-chunk jerk penalty.
METHODS: dict[str, tuple[str, str, str]] = {
    "grpo-binary": ("grpo", "binary", ""),
    "smoothvla-grpo": ("grpo", "smooth", ""),
    "grpo-decoupled": ("grpo", "binary", "decoupled"),
    "grpo-chunk-credit": ("grpo", "binary", "chunk"),
    "grpo-random": ("grpo", "random", ""),
    "grpo-staged": ("grpo", "staged", ""),
    "ppo": ("ppo", "binary", ""),
    "smoothvla-ppo": ("ppo", "smooth", ""),
    "ppo-dense-jerk": ("ppo", "binary", "dense"),
    "dpo": ("dpo", "binary", ""),
    "smoothvla-dpo": ("dpo", "smooth", ""),
}


def study_sft() -> SFTConfig:
    """The study's defaults for its SFT runs (the `[sft]` table): 2000 steps of a token-head
    policy, no evaluation during training, no TensorBoard."""
    from smoothvla.policies.vla import VLAConfig

    return SFTConfig(steps=2000, eval_every=0, tensorboard=False, policy=VLAConfig(head="token"))


def study_train() -> FinetuneConfig:
    """The study's defaults for its RL runs (the `[train]` table): 10 iterations of 2 groups
    of G = 8, rollouts of token heads at temperature 0.2 (at 1.0 the demo's SFT policy never
    succeeds when sampled, 45% greedy, so every group fails and RL learns nothing), the
    smooth reward's jerk unit from the starting policy's rollouts (compact SFT policies here
    move ~30x jerkier than the experts, so with the experts' unit and lam = 0.2 every success
    is clipped to 0: docs/rl.md), a checkpoint every iteration."""
    from smoothvla.policies.overrides import PolicyOverrides
    from smoothvla.rewards import RewardConfig

    return FinetuneConfig(iterations=10, groups_per_iteration=2, checkpoint_every=1,
                          reward=RewardConfig(jerk_scale_from_policy=True),
                          overrides=PolicyOverrides(temperature=0.2))


STUDY_SETS = {
    "sft": ("data", "run_dir", "resume", "seed", "policy.seed"),
    "train": ("policy", "tasks", "algorithm", "seed", "out_dir", "resume", "workers",
              "envs_per_worker", "reward.name", "reward.jerk_scale", "reward.seed", "grpo.seed",
              "grpo.advantage", "ppo.seed", "ppo.dense_jerk_weight", "dpo.seed"),
}
"""Fields of the `[sft]` and `[train]` tables that the study sets for each run (from its
tasks, seeds, methods, out, workers and the measured jerk unit); a study config that sets
them is refused."""


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class StudyConfig:
    """One study: what to train, how long, and how to evaluate it. The SFT and RL runs are
    `smoothvla sft` and `smoothvla train` configs (`sft`, `train`), with the study's defaults;
    the study fills in per run what it decides itself (`STUDY_SETS`)."""

    name: str = "demo"
    """Name shown in the report."""
    out: str = "runs/demo"
    """Folder of every artefact of the study (see the module docstring)."""
    suite: str = "tabletop-object"
    """Suite of the tasks."""
    tasks: tuple[str, ...] = ()
    """Task names or ids within the suite (empty: all of the suite's tasks)."""
    demos_per_task: int = 20
    """Expert demonstrations per task for SFT (init states 0..N-1)."""
    sft: SFTConfig = field(default_factory=study_sft)
    """The SFT runs, as `smoothvla sft --config` reads them (`[sft]`, `[sft.policy]`); the
    policy's cameras and image size are also those of the demonstrations (every evaluated
    policy is shown its own). The study sets data, run_dir, resume and the seeds."""
    sft_checkpoint: str = ""
    """An SFT policy to start every RL run from (a checkpoint directory, or
    'smoothvla:NAME' for one shipped with the package, e.g. smoothvla:demo-token) instead of
    training one per seed; SFT is then one row trained once, and the demonstrations collected
    serve only as the experts' jerk reference (collected without images)."""
    train: FinetuneConfig = field(default_factory=study_train)
    """The RL runs, as `smoothvla train --config` reads them (`[train]`, `[train.grpo]`,
    `[train.reward]`, `[train.overrides]`, ...). Its max_steps caps the evaluation episodes
    too; overrides.temperature applies to token and DCT heads only (other heads keep their
    own sampling). The study sets the policy, tasks, algorithm, reward name, jerk unit,
    seeds, out_dir, resume, workers and the smoothness credit of each method."""
    methods: tuple[str, ...] = ("grpo-binary", "smoothvla-grpo")
    """RL variants: grpo-binary, smoothvla-grpo, grpo-decoupled, grpo-chunk-credit, grpo-random,
    grpo-staged, ppo, smoothvla-ppo, ppo-dense-jerk, dpo, smoothvla-dpo (smoothvla-* use the
    hybrid reward of eq. 5; the credit variants are in METHODS' comment)."""
    seeds: tuple[int, ...] = (0,)
    """Training seeds: every method (and SFT) is trained once per seed."""
    dense_jerk_weight: float = 0.2
    """ppo-dense-jerk's train.ppo.dense_jerk_weight: the weight of its per-chunk jerk penalty
    (in units of the starting policy's mean jerk, as eq. 5's lam); the other methods run
    without the penalty."""
    eval_init_states: int = 10
    """Evaluation init states per task (0..N-1)."""
    eval_seeds: tuple[int, ...] = (0,)
    """Env seeds of evaluation episodes."""
    perturbations: tuple[str, ...] = ("language", "light")
    """Perturbations evaluated besides in-distribution (KIND or KIND@STRENGTH)."""
    executions: tuple[str, ...] = ()
    """Execution schemes evaluated on every policy besides whole chunks, as SCHEME or
    SCHEME:STEPS (ensemble, receding:4, blend:4, prefix:4; rollout/execution.py); each gives
    rows labelled POLICY+SCHEME. Prefix conditioning needs the flow head."""
    workers: int = 2
    """Env worker processes of every stage (collection, RL, evaluation)."""
    envs_per_worker: int = 4
    """Envs per worker (the policy is batched over all of them)."""
    videos: int = 1
    """Episodes recorded as video per policy x task x perturbation (the first init states,
    seed order), beside the results (results_videos/); the report plays the policies side by
    side from the same start with their jerk over time. 0: none."""

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        self.methods, self.seeds = tuple(self.methods), tuple(self.seeds)
        self.eval_seeds, self.perturbations = tuple(self.eval_seeds), tuple(self.perturbations)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if not self.seeds:
            raise UserError("seeds is empty: give at least one training seed")
        check_fields(self, demos_per_task=">= 1", eval_init_states=">= 1", workers=">= 1",
                     envs_per_worker=">= 1", dense_jerk_weight=">= 0")
        self._check_study_sets()
        from smoothvla.policies.packaged import resolve_checkpoint

        self.sft_checkpoint = resolve_checkpoint(self.sft_checkpoint)
        if self.sft_checkpoint and not (Path(self.sft_checkpoint) / "config.json").is_file():
            raise UserFileNotFoundError(f"sft_checkpoint {self.sft_checkpoint}: not a policy "
                                        "checkpoint (no config.json in it)")
        from smoothvla.envs.tabletop.perturbations import as_specs
        from smoothvla.rollout.execution import ExecutionConfig

        for pert in self.perturbations:  # checked now, not when evaluation starts hours later
            check_parses("perturbations", pert, as_specs,
                         "use KIND or KIND@STRENGTH, STRENGTH in [0, 1] (docs/envs.md)")
        chunk_size = self.sft.policy.chunk_size
        for spec in self.executions:
            ExecutionConfig.parse(spec).steps_for(chunk_size)
        self.train.execution.steps_for(chunk_size)

    def _check_study_sets(self) -> None:
        """UserError for a field of `sft` or `train` that the study sets itself."""
        for table, plain in (("sft", SFTConfig()), ("train", FinetuneConfig())):
            for name in STUDY_SETS[table]:
                if _get(getattr(self, table), name) != _get(plain, name):
                    raise UserError(f"{table}.{name} is set by the study for each run (from its "
                                    "tasks, seeds, methods, out and workers); remove it from "
                                    "the study config")

    @classmethod
    def from_toml(cls, path: str | Path) -> "StudyConfig":
        """Load a preset: the fields as keys, `[sft]` and `[train]` (and their nested
        configs) as tables; unknown keys are an error naming them."""
        from smoothvla.tomlconfig import checked, config_from_toml

        return checked(config_from_toml(cls, path, "a study"))


RESUME_MAY_CHANGE = frozenset({"name", "seeds", "methods", "executions", "eval_init_states",
                               "eval_seeds", "perturbations", "workers", "envs_per_worker",
                               "videos"})
"""Study fields a resumed study may change: they add or re-arrange work without touching what
the finished stages computed. Any other change would silently mix two studies in one folder."""

FLAT_KEYS = frozenset({"rl_iterations", "rl_lr", "rl_temperature", "kl_beta", "sft_steps",
                       "sft_lr", "sft_batch_size", "head", "chunk_size", "cameras", "image_size",
                       "group_size", "groups_per_iteration", "rl_init_states",
                       "rl_resample_rounds", "grpo_ratio_level", "lam", "smooth_weight",
                       "jerk_scale_source", "rl_max_steps", "rl_execution"})
"""Keys of the study config before it nested the SFT and RL configs (`[sft]`, `[train]`)."""


def _check_resume(saved: Path, cfg: StudyConfig) -> None:
    """Refuse to resume a study whose folder holds stages of another configuration."""
    if not saved.is_file():
        return
    from smoothvla.algorithms.trainer import config_changes
    from smoothvla.eval.runner import checkpoint_digest

    try:
        before = json.loads(saved.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{saved} is not a study config ({err}); give a new `out` or remove "
                        "the file if the folder holds no study") from None
    if not isinstance(before, dict):
        raise UserError(f"{saved} is not a study config; give a new `out`")
    old_keys = sorted(FLAT_KEYS & set(before))
    if old_keys or not isinstance(before.get("train"), dict):
        raise UserError(
            f"{saved.parent} holds a study started by an older smoothvla, whose study config "
            f"had flat keys ({', '.join(old_keys[:4]) or 'no [train] table'}, ...) where this "
            "one has [sft] and [train] tables; resume it with the version that started it, or "
            "give a new `out` (docs/eval.md, \"The study\")")
    changed = []
    for name, (old, value) in config_changes(before, asdict(cfg)).items():
        if name.split(".")[0] in RESUME_MAY_CHANGE:
            continue
        if name == "sft_checkpoint" and old and value and Path(old).exists():
            if checkpoint_digest(old) == checkpoint_digest(value):
                continue  # the same weights under another path
        changed.append(f"{name}: {old!r} -> {value!r}")
    if changed:
        raise UserError(f"{saved.parent} holds a study run with another configuration ("
                        + "; ".join(changed) + "); give a new `out` or restore those values "
                        f"(a resumed study may change only {', '.join(sorted(RESUME_MAY_CHANGE))})")


def _head_of(checkpoint: str) -> str:
    """The action head of a saved policy (its config.json)."""
    meta = json.loads((Path(checkpoint) / "config.json").read_text())
    return meta["config"]["head"]


def _log(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Study:
    """Runs the stages of a `StudyConfig`; each stage is skipped once done."""

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        _check_resume(self.out / "study.json", cfg)
        atomic_write_json(self.out / "study.json", asdict(cfg))

    # -- stage bookkeeping -------------------------------------------------------------
    def _stage(self, name: str, fn, *args) -> Any:
        marker = self.out / f".{name}.done"
        if marker.exists():
            _log(f"{name}: done earlier, skipped")
            return json.loads(marker.read_text() or "null")
        result = self._timed(name, fn, *args)
        atomic_write_json(marker, result)
        return result

    def _timed(self, name: str, fn, *args) -> Any:
        """Run a stage that keeps no marker (it resumes by itself), timed and logged."""
        _log(f"{name}: start")
        start = time.perf_counter()
        result = fn(*args)
        self.timings[name] = time.perf_counter() - start
        _log(f"{name}: done in {self.timings[name]:.0f} s")
        return result

    def task_ids(self) -> list[str]:
        from smoothvla.envs import list_tasks

        specs = list_tasks(self.cfg.suite)
        if not self.cfg.tasks:
            return [s.task_id for s in specs]
        out = []
        for t in self.cfg.tasks:
            match = [s.task_id for s in specs if t in (s.name, s.task_id)]
            if not match:
                raise UserError(f"unknown task {t!r} in {self.cfg.suite}")
            out.append(match[0])
        return out

    # -- stages ------------------------------------------------------------------------
    def collect(self) -> str:
        """Expert demonstrations of the study's tasks: SFT's data, with the cameras and image
        size of `[sft.policy]`; from a given SFT checkpoint only the experts' jerk reference,
        so no camera is rendered (on LIBERO two 128 px cameras are about 80% of a step)."""
        from smoothvla.experts.collect import CollectConfig, collect_demos

        path = self.out / "demos.hdf5"
        cameras = () if self.cfg.sft_checkpoint else self.cfg.sft.policy.cameras
        if not path.exists():
            collect_demos(CollectConfig(
                out=path, suite=self.cfg.suite, tasks=tuple(self.task_ids()),
                episodes_per_task=self.cfg.demos_per_task, workers=self.cfg.workers,
                cameras=cameras, image_size=self.cfg.sft.policy.image_size,
                resume=True,  # a study killed while collecting finishes its parts
            ))
        return str(path)

    def jerk_scale(self, demos: str) -> float:
        """The experts' mean jerk, measured by `collect` on the unfiltered motion."""
        from smoothvla.data.hdf5 import iter_demos

        values = [float(d.attrs["expert_mean_jerk"]) for _, d in iter_demos(demos, obs_keys=())]
        values = [v for v in values if np.isfinite(v)]
        if not values:
            raise UserError(f"{demos}: no demo records expert_mean_jerk; re-collect it")
        return float(np.mean(values))

    def sft(self, demos: str, seed: int) -> str:
        from smoothvla.algorithms.sft import train

        base = self.cfg.sft
        final = train(replace(base, data=(demos,), run_dir=str(self.out / f"sft-s{seed}"),
                              resume=True, seed=seed, policy=replace(base.policy, seed=seed)))
        return str(final)

    def train_config(self, method: str, seed: int, init: str, jerk_scale: float) -> FinetuneConfig:
        """The `smoothvla train` config of one RL run of the study: its `train` table with
        what the method, the seed and the study decide."""
        algorithm, reward, credit = METHODS[method]
        base = self.cfg.train
        samples_tokens = _head_of(init) in ("token", "dct")
        return replace(
            base, policy=init, tasks=tuple(self.task_ids()), algorithm=algorithm, seed=seed,
            out_dir=str(self.out / f"{method}-s{seed}"), resume=True,
            workers=self.cfg.workers, envs_per_worker=self.cfg.envs_per_worker,
            reward=replace(base.reward, name=reward, jerk_scale=jerk_scale, seed=seed),
            grpo=replace(base.grpo, seed=seed,
                         advantage=credit if credit in ("decoupled", "chunk") else "standard"),
            ppo=replace(base.ppo, seed=seed,
                        dense_jerk_weight=self.cfg.dense_jerk_weight if credit == "dense" else 0.0),
            dpo=replace(base.dpo, seed=seed),
            overrides=replace(base.overrides, temperature=base.overrides.temperature
                              if samples_tokens else None),
        )

    def rl(self, method: str, seed: int, init: str, jerk_scale: float) -> str:
        from smoothvla.algorithms.finetune import finetune

        cfg = self.train_config(method, seed, init, jerk_scale)
        finetune(cfg)
        return str(Path(cfg.out_dir) / "policy")

    def eval_plan(self):
        """The evaluation every policy gets (`EvalPlan`; its env options are set per policy)."""
        from smoothvla.eval.runner import EvalPlan

        return EvalPlan(
            task_ids=self.task_ids(), init_ids=range(self.cfg.eval_init_states),
            seeds=self.cfg.eval_seeds, perturbations=("none",) + self.cfg.perturbations,
            videos=self.cfg.videos, max_steps=self.cfg.train.max_steps,
        )

    def evaluate(self, checkpoints: dict[tuple[str, int], str]) -> str:
        import torch

        from smoothvla.eval.results import ResultsFile
        from smoothvla.eval.runner import PolicyRef, evaluate
        from smoothvla.policies import load_policy, place
        from smoothvla.rollout.execution import ExecutionConfig

        torch.set_num_threads(1)
        results = ResultsFile(self.out / "results.jsonl")
        plan = self.eval_plan()
        schemes = [("", ExecutionConfig())] + [
            (f"+{spec}", ExecutionConfig.parse(spec)) for spec in self.cfg.executions
            if not (spec.startswith("prefix") and self.cfg.sft.policy.head != "flow")]
        for (label, seed), path in checkpoints.items():
            policy = place(load_policy(path))
            policy.eval()
            # the envs render what this policy sees (as its RL rollouts did), whatever
            # [sft.policy] says: a given SFT checkpoint brings its own cameras and size
            plan.env_options = {"cameras": policy.cameras, "image_size": policy.image_size}
            for suffix, execution in schemes:
                plan.execution = execution
                with torch.no_grad():
                    evaluate(policy, PolicyRef(label + suffix, path, seed), plan, results,
                             workers=self.cfg.workers, envs_per_worker=self.cfg.envs_per_worker)
        return str(results.path)

    def report(self, results: str, expert_jerk: float = float("nan")) -> str:
        from smoothvla.report.build import build_report

        logs = sorted(str(p) for p in self.out.glob("*-s*/log.jsonl") if not p.parent.name.startswith("sft"))
        # the videos evaluation recorded beside the results are found there (side by side)
        files = build_report([results], self.out / "report", logs, title=f"smoothvla study: {self.cfg.name}",
                             expert_jerk=expert_jerk)
        if files.media:
            _log(f"report: {len(files.media) // 2} videos side by side"
                 + ("" if files.media_inline else " (linked from report/media/)"))
        return str(files.html)

    # -- everything ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from smoothvla.eval.runner import check_plan

        # what the evaluation asks of the suite (tasks, init states, perturbation kinds: a
        # LIBERO suite implements fewer than the tabletop one), before hours of training
        check_plan(self.eval_plan())
        given = self.cfg.sft_checkpoint
        from_policy = self.cfg.train.reward.jerk_scale_from_policy
        # the experts' jerk is the reference every jerk is reported against (x expert)
        demos = self._stage("collect", self.collect)
        expert = self._stage("jerk_scale", self.jerk_scale, demos)
        _log(f"experts' mean jerk = {expert:.4g} m/s^3")
        scale = 1.0 if from_policy else expert  # 'policy': each run measures its own unit
        unit = ("each run's starting-policy rollouts" if from_policy
                else f"{scale:.3g} m/s^3 (the experts' mean jerk)")
        _log(f"the smooth reward's jerk unit: {unit}")
        results = str(self.out / "results.jsonl")
        for seed in self.cfg.seeds:
            checkpoints: dict[tuple[str, int], str] = {}
            sft = given or self._stage(f"sft-s{seed}", self.sft, demos, seed)
            if not given or seed == self.cfg.seeds[0]:  # a given SFT policy is one row
                checkpoints[("sft", seed)] = sft
            for method in self.cfg.methods:
                checkpoints[(method, seed)] = self._stage(f"{method}-s{seed}", self.rl, method, seed, sft, scale)
            # each seed's policies are evaluated before the next seed trains, so a study cut
            # short has complete seeds; evaluation resumes episode by episode (never a marker:
            # schemes or init states added to the config are evaluated on the next run)
            results = self._timed(f"eval-s{seed}", self.evaluate, checkpoints)
        html = self._timed("report", self.report, results, expert)
        return {"results": results, "report": html, "jerk_scale": scale, "jerk_unit": unit,
                "expert_jerk": expert}


def _policy_order(policies, methods: tuple[str, ...]) -> list[str]:
    """SFT, then each method in `methods` order, each followed by its execution variants
    ("METHOD+SCHEME"); any other policy last."""
    base = ("sft",) + tuple(methods)
    order = [p for b in base for p in policies if p == b or p.startswith(b + "+")]
    return order + [p for p in policies if p not in order]


def summary_rows(results_path: str | Path, methods: tuple[str, ...],
                 expert_jerk: float = float("nan")) -> tuple[list[str], list[list]]:
    """The printed summary, one row per evaluated policy (execution variants included):
    success in distribution with its 95% Wilson interval and under each perturbation; mean
    jerk of in-distribution successes with its 95% interval and as a multiple of the
    experts'; and paired tests in distribution against SFT and against GRPO-binary
    (McNemar on success; relative jerk change of common successes with its Wilcoxon p)."""
    from smoothvla.eval.compare import paired
    from smoothvla.eval.results import read_results
    from smoothvla.eval.stats import mean_ci, wilson_interval
    from smoothvla.eval.summary import IND

    results = read_results([results_path])
    by_policy: dict[str, list] = {}
    for r in results:
        by_policy.setdefault(r.policy, []).append(r)
    perts = sorted({r.perturbation for r in results if r.perturbation != IND})
    order = _policy_order(by_policy, methods)
    ind = {p: [r for r in rs if r.perturbation == IND] for p, rs in by_policy.items()}

    def versus(ref: str, policy: str) -> str:
        if ref not in ind or policy == ref or not ind[policy]:
            return ""
        c = paired(ind[ref], ind[policy])
        jerk = "" if not np.isfinite(c.jerk_change) else (
            f"; jerk {100 * c.jerk_change:+.0f}%" + (f" p={c.jerk_p:.2g}" if np.isfinite(c.jerk_p) else ""))
        return f"{c.only_a}/{c.only_b} p={c.success_p:.2g}{jerk}"

    header = (["policy", "success IND % [95% CI]"] + [f"{p} %" for p in perts]
              + ["jerk of successes m/s^3 [95% CI]", "x expert", "vs sft (lost/won p; jerk)",
                 "vs grpo-binary", "episodes"])
    rows = []
    for policy in order:
        rs = ind[policy]
        if not rs:
            continue
        k = sum(r.success for r in rs)
        lo, hi = wilson_interval(k, len(rs))
        jerks = [r.mean_jerk for r in rs if r.success and np.isfinite(r.mean_jerk)]
        jm, jlo, jhi = mean_ci(jerks) if jerks else (float("nan"),) * 3
        per_pert = []
        for p in perts:
            prs = [r for r in by_policy[policy] if r.perturbation == p]
            per_pert.append(100 * np.mean([r.success for r in prs]) if prs else float("nan"))
        rows.append([policy, f"{100 * k / len(rs):.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"] + per_pert
                    + [f"{jm:.1f} [{jlo:.1f}, {jhi:.1f}]" if jerks else "-",
                       jm / expert_jerk if jerks and expert_jerk > 0 else float("nan"),
                       versus("sft", policy), versus("grpo-binary", policy),
                       len(by_policy[policy])])
    return header, rows


SMOOTHNESS_METRICS = (("mean_jerk", "jerk m/s^3"), ("ldlj", "LDLJ"), ("sparc", "SPARC"),
                      ("chunk_jump", "boundary jump"))
"""EpisodeResult fields of the smoothness table, with their column names."""


def smoothness_rows(results_path: str | Path, methods: tuple[str, ...]) -> tuple[list[str], list[list]]:
    """The study's smoothness table, one row per evaluated policy (execution variants
    included), in distribution: success per training seed, then each of
    `SMOOTHNESS_METRICS` over the successful episodes as mean [95% interval]. The interval
    is over episodes of all seeds pooled; the per-seed success column shows the spread
    between training seeds."""
    from smoothvla.eval.results import read_results
    from smoothvla.eval.stats import mean_ci
    from smoothvla.eval.summary import IND

    ind: dict[str, list] = {}
    for r in read_results([results_path]):
        if r.perturbation == IND:
            ind.setdefault(r.policy, []).append(r)
    order = _policy_order(ind, methods)
    header = ["policy", "success % per seed"] + [f"{name} [95% CI]" for _, name in SMOOTHNESS_METRICS]
    rows = []
    for policy in order:
        rs = ind[policy]
        seeds = sorted({r.train_seed for r in rs})
        per_seed = " / ".join(
            f"{100 * np.mean([r.success for r in rs if r.train_seed == s]):.0f}" for s in seeds)
        row = [policy, per_seed]
        for name, _ in SMOOTHNESS_METRICS:
            values = [getattr(r, name) for r in rs if r.success]
            m, lo, hi = mean_ci(values)
            row.append("-" if not np.isfinite(m) else
                       f"{m:.3g} [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{m:.3g}")
        rows.append(row)
    return header, rows
