"""The study: demonstrations -> SFT -> RL variants -> evaluation -> report, resumable.

Every stage writes into `out/` and leaves a `.done` marker when it has finished; a re-run
skips finished stages and resumes the unfinished one (SFT and RL from their checkpoints,
evaluation from its results file), so interrupting `smoothvla demo` and running it again
continues rather than restarting.

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
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass
class StudyConfig:
    """One study: what to train, how long, and how to evaluate it."""

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
    cameras: tuple[str, ...] = ("agentview", "eye_in_hand")
    """Cameras the policy sees."""
    image_size: int = 128
    """Camera resolution in pixels."""
    head: str = "token"
    """Action head of the policy: token, flow or gaussian."""
    chunk_size: int = 8
    """Actions per policy call."""
    sft_steps: int = 2000
    """SFT optimizer steps."""
    sft_batch_size: int = 16
    """SFT batch size."""
    sft_lr: float = 3e-4
    """SFT peak learning rate."""
    sft_checkpoint: str = ""
    """An SFT policy to start every RL run from (a checkpoint directory, or
    'smoothvla:NAME' for one shipped with the package, e.g. smoothvla:demo-token) instead of
    training one per seed; SFT is then one row trained once, and the demonstrations collected
    serve only as the experts' jerk reference."""
    methods: tuple[str, ...] = ("grpo-binary", "smoothvla-grpo")
    """RL variants: grpo-binary, smoothvla-grpo, grpo-decoupled, grpo-chunk-credit, grpo-random,
    grpo-staged, ppo, smoothvla-ppo, ppo-dense-jerk, dpo, smoothvla-dpo (smoothvla-* use the
    hybrid reward of eq. 5; the credit variants are in METHODS' comment)."""
    seeds: tuple[int, ...] = (0,)
    """Training seeds: every method (and SFT) is trained once per seed."""
    rl_iterations: int = 10
    """RL collect-update iterations per run."""
    group_size: int = 8
    """G, rollouts per group."""
    groups_per_iteration: int = 2
    """Groups per RL iteration."""
    rl_lr: float = 2e-5
    """RL learning rate (GRPO, PPO, DPO)."""
    rl_init_states: int = 0
    """RL draws its groups from init states 0..N-1 of each task (0: all of the task's)."""
    rl_resample_rounds: int = 0
    """Dynamic sampling's refill: extra rounds of groups while too few have reward spread."""
    grpo_ratio_level: str = "chunk"
    """GRPO's importance ratio and clip per 'chunk' or per 'token' (docs/rl.md)."""
    kl_beta: float = 0.0
    """GRPO: weight of the KL term to the starting policy (0: none)."""
    rl_temperature: float = 0.2
    """Token and DCT heads: sampling temperature of RL rollouts. At 1.0 the demo's SFT policy never
    succeeds when sampled (45% greedy), so every group fails and RL learns nothing."""
    lam: float = 0.2
    """Smoothness weight of the hybrid reward (the SmoothVLA paper's eq. 5)."""
    smooth_weight: float = 0.5
    """Weight w of the smoothness advantage in grpo-decoupled and grpo-chunk-credit."""
    dense_jerk_weight: float = 0.2
    """Weight of ppo-dense-jerk's per-chunk jerk penalty (in units of the starting policy's
    mean jerk, as eq. 5's lam)."""
    jerk_scale_source: str = "policy"
    """Unit of jerk in the hybrid reward: 'expert' (the demonstrations' mean jerk) or
    'policy' (the SFT policy's mean jerk in the first RL iteration). Compact SFT policies
    here move ~30x jerkier than the experts, so with 'expert' and lam = 0.2 every success
    is clipped to 0 and the smooth reward degenerates to no signal (docs/rl.md)."""
    rl_max_steps: int = 0
    """Cap on RL/eval episode length in control steps (0: the task's limit)."""
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
    rl_execution: str = "chunk"
    """Execution scheme of the RL rollouts (chunk, receding:N or prefix:N)."""
    workers: int = 2
    """Env worker processes."""
    envs_per_worker: int = 4
    """Envs per worker (the policy is batched over all of them)."""
    videos: int = 1
    """Episodes recorded as video per policy x task x perturbation (the first init states,
    seed order), beside the results (results_videos/); the report plays the policies side by
    side from the same start with their jerk over time. 0: none."""

    def __post_init__(self) -> None:
        self.tasks, self.cameras = tuple(self.tasks), tuple(self.cameras)
        self.methods, self.seeds = tuple(self.methods), tuple(self.seeds)
        self.eval_seeds, self.perturbations = tuple(self.eval_seeds), tuple(self.perturbations)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if not self.seeds:
            raise UserError("seeds is empty: give at least one training seed")
        check_fields(self, demos_per_task=">= 1", image_size=">= 8", chunk_size=">= 1",
                     sft_steps=">= 1", sft_batch_size=">= 1", sft_lr="(0, 1]",
                     rl_iterations=">= 1", group_size=">= 2", groups_per_iteration=">= 1",
                     rl_lr="(0, 1]", rl_init_states=">= 0", rl_resample_rounds=">= 0",
                     kl_beta=">= 0", rl_temperature=">= 0", lam="[0, 10]", rl_max_steps=">= 0",
                     eval_init_states=">= 1", workers=">= 1", envs_per_worker=">= 1",
                     smooth_weight=">= 0", dense_jerk_weight=">= 0")
        if self.grpo_ratio_level not in ("chunk", "token"):
            raise UserError(f"grpo_ratio_level must be 'chunk' or 'token', got {self.grpo_ratio_level!r}")
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
        for spec in self.executions:
            ExecutionConfig.parse(spec).steps_for(self.chunk_size)
        rl = ExecutionConfig.parse(self.rl_execution)
        rl.steps_for(self.chunk_size)
        rl.check_for_rl()
        if self.jerk_scale_source not in ("expert", "policy"):
            raise UserError(f"jerk_scale_source must be 'expert' or 'policy', got {self.jerk_scale_source!r}")

    @classmethod
    def from_toml(cls, path: str | Path) -> "StudyConfig":
        """Load a preset; unknown keys are an error naming them."""
        path = Path(path)
        if not path.is_file():
            raise UserFileNotFoundError(f"{path}: no such study config")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML ({err})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{path}: unknown keys {unknown}")
        return cls(**data)


RESUME_MAY_CHANGE = frozenset({"name", "seeds", "methods", "executions", "eval_init_states",
                               "eval_seeds", "perturbations", "workers", "envs_per_worker",
                               "videos"})
"""Study fields a resumed study may change: they add or re-arrange work without touching what
the finished stages computed. Any other change would silently mix two studies in one folder."""


def _check_resume(saved: Path, cfg: StudyConfig) -> None:
    """Refuse to resume a study whose folder holds stages of another configuration."""
    if not saved.is_file():
        return
    from smoothvla.eval.runner import checkpoint_digest

    before, now = json.loads(saved.read_text()), asdict(cfg)
    changed = []
    for name, value in now.items():
        if name in RESUME_MAY_CHANGE or name not in before:
            continue
        old = before[name]
        if name == "sft_checkpoint":  # the same weights may live under another path
            same = (checkpoint_digest(old) == checkpoint_digest(value) if old and value and Path(old).exists()
                    else old == value)
        else:
            same = json.loads(json.dumps(value)) == old
        if not same:
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
        from smoothvla.experts.collect import CollectConfig, collect_demos

        path = self.out / "demos.hdf5"
        if not path.exists():
            collect_demos(CollectConfig(
                out=path, suite=self.cfg.suite, tasks=tuple(self.task_ids()),
                episodes_per_task=self.cfg.demos_per_task, workers=self.cfg.workers,
                cameras=self.cfg.cameras, image_size=self.cfg.image_size,
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
        from smoothvla.algorithms.sft import SFTConfig, train
        from smoothvla.policies.vla import VLAConfig

        final = train(SFTConfig(
            data=(demos,), run_dir=str(self.out / f"sft-s{seed}"),
            policy=VLAConfig(cameras=self.cfg.cameras, image_size=self.cfg.image_size,
                             head=self.cfg.head, chunk_size=self.cfg.chunk_size, seed=seed),
            steps=self.cfg.sft_steps, batch_size=self.cfg.sft_batch_size, lr=self.cfg.sft_lr,
            eval_every=0, resume=True, seed=seed, tensorboard=False,
        ))
        return str(final)

    def train_config(self, method: str, seed: int, init: str, jerk_scale: float):
        """The `smoothvla train` config of one RL run of the study."""
        from smoothvla.algorithms.dpo import DPOConfig
        from smoothvla.algorithms.finetune import FinetuneConfig
        from smoothvla.algorithms.grpo import GRPOConfig
        from smoothvla.algorithms.ppo import PPOConfig
        from smoothvla.rewards import RewardConfig
        from smoothvla.rollout.execution import ExecutionConfig

        algorithm, reward, credit = METHODS[method]
        advantage = credit if credit in ("decoupled", "chunk") else "standard"
        return FinetuneConfig(
            policy=init, tasks=tuple(self.task_ids()), algorithm=algorithm,
            iterations=self.cfg.rl_iterations, group_size=self.cfg.group_size,
            groups_per_iteration=self.cfg.groups_per_iteration, seed=seed,
            init_ids=tuple(range(self.cfg.rl_init_states)),
            max_resample_rounds=self.cfg.rl_resample_rounds,
            out_dir=str(self.out / f"{method}-s{seed}"), resume=True, checkpoint_every=1,
            reward=RewardConfig(name=reward, lam=self.cfg.lam, jerk_scale=jerk_scale, seed=seed,
                                jerk_scale_from_policy=self.cfg.jerk_scale_source == "policy"),
            grpo=GRPOConfig(lr=self.cfg.rl_lr, seed=seed, ratio_level=self.cfg.grpo_ratio_level,
                            beta=self.cfg.kl_beta, advantage=advantage,
                            smooth_weight=self.cfg.smooth_weight),
            ppo=PPOConfig(lr=self.cfg.rl_lr, seed=seed,
                          dense_jerk_weight=self.cfg.dense_jerk_weight if credit == "dense" else 0.0),
            dpo=DPOConfig(lr=self.cfg.rl_lr, seed=seed),
            workers=self.cfg.workers, envs_per_worker=self.cfg.envs_per_worker,
            max_steps=self.cfg.rl_max_steps,
            temperature=self.cfg.rl_temperature if _head_of(init) in ("token", "dct") else 0.0,
            execution=ExecutionConfig.parse(self.cfg.rl_execution),
        )

    def rl(self, method: str, seed: int, init: str, jerk_scale: float) -> str:
        from smoothvla.algorithms.finetune import finetune

        cfg = self.train_config(method, seed, init, jerk_scale)
        finetune(cfg)
        return str(Path(cfg.out_dir) / "policy")

    def evaluate(self, checkpoints: dict[tuple[str, int], str]) -> str:
        import torch

        from smoothvla.eval.results import ResultsFile
        from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
        from smoothvla.policies import load_policy, place
        from smoothvla.rollout.execution import ExecutionConfig

        torch.set_num_threads(1)
        results = ResultsFile(self.out / "results.jsonl")
        plan = EvalPlan(
            task_ids=self.task_ids(), init_ids=range(self.cfg.eval_init_states),
            seeds=self.cfg.eval_seeds, perturbations=("none",) + self.cfg.perturbations,
            env_options={"cameras": self.cfg.cameras, "image_size": self.cfg.image_size},
            videos=self.cfg.videos, max_steps=self.cfg.rl_max_steps,
        )
        schemes = [("", ExecutionConfig())] + [
            (f"+{spec}", ExecutionConfig.parse(spec)) for spec in self.cfg.executions
            if not (spec.startswith("prefix") and self.cfg.head != "flow")]
        for (label, seed), path in checkpoints.items():
            policy = place(load_policy(path))
            policy.eval()
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
        given = self.cfg.sft_checkpoint
        from_policy = self.cfg.jerk_scale_source == "policy"
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
