"""`smoothvla demo`: the study in small, on the embedded suite, end to end.

The shipped SFT checkpoint -> GRPO with the binary reward and SmoothVLA-GRPO (the SmoothVLA
paper's eq. 5 reward) -> evaluation of every policy acted with whole chunks and with temporal
ensembling, in distribution and under a language perturbation -> the summary (success and
jerk with 95% intervals, paired tests against SFT and GRPO-binary) and the report. The
defaults are the demo's budget (under 20 minutes on 2 CPU cores); `--config` loads a
larger preset such as configs/study-smoothness.toml. Interrupted, it continues where it
stopped.
`--synthetic` prints the smoothness analysis of generated trajectories instead (seconds).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from smoothvla.io import check_writable_output
from smoothvla.report.tables import format_table
from smoothvla.study import Study, StudyConfig, smoothness_rows, study_train, summary_rows

DEMO_TASKS = ("pick-ketchup-place-basket", "pick-milk-place-basket")


def demo_study() -> StudyConfig:
    """The embedded default, about 15 minutes on 2 cores: from the shipped SFT checkpoint
    that sees its last executed action (smoothvla:demo-token-history; configs/demo-sft.sh
    reproduces it), GRPO with the binary reward and SmoothVLA-GRPO (eq. 5: of the smoothness
    rewards the one the smoothness study measured smoothest against GRPO-binary, docs/RESULTS.md),
    each policy acted with whole chunks and with temporal ensembling (a new chunk
    every step). Action history plus ensembling is the smoothest combination measured at no
    cost in success (docs/RESULTS.md, "Smoothness"). Evaluated in distribution and under a
    language perturbation."""
    from smoothvla.algorithms.grpo import GRPOConfig

    train = replace(study_train(), iterations=6, group_size=8, groups_per_iteration=2,
                    init_ids=tuple(range(25)),
                    grpo=GRPOConfig(lr=2e-5, ratio_level="token", beta=0.1))
    return StudyConfig(
        name="demo", out="runs/demo", suite="tabletop-object", tasks=DEMO_TASKS,
        sft_checkpoint="smoothvla:demo-token-history", demos_per_task=5, train=train,
        methods=("grpo-binary", "smoothvla-grpo"), executions=("ensemble:1",),
        eval_init_states=10, perturbations=("language",), envs_per_worker=5,
    )


@dataclass
class Config:
    study: StudyConfig = field(default_factory=demo_study)
    """The study to run (defaults: the demo's budget)."""
    config: Path | None = None
    """A study preset (TOML: StudyConfig's fields as keys, its SFT and RL configs as [sft] and
    [train] tables) that replaces the demo's defaults; --study.* flags override it
    (`--study.seeds 0 1`). The CLI loads it into `study` (smoothvla.cli.PRESET_FIELDS)."""
    synthetic: bool = False
    """Only analyse generated smooth and jittery trajectories (no simulation, seconds)."""


def run_synthetic(control_hz: float = 20.0, lam: float = 0.2, seed: int = 0) -> int:
    from smoothvla.metrics import path_metrics
    from smoothvla.metrics.synthetic import chunked, jittery, pick_place_path
    from smoothvla.rewards import smooth_reward
    from smoothvla.trajectory import Trajectory

    dt = 1.0 / control_hz
    rng = np.random.default_rng(seed)
    smooth = pick_place_path(dt)
    paths = {
        "minimum-jerk expert": smooth,
        "chunked policy (k=8, 0.3 mm steps)": chunked(smooth, 8, 0.0003, rng),
        "jittery policy (0.05 mm noise)": jittery(smooth, 0.00005, rng),
        "jittery policy (0.1 mm noise)": jittery(smooth, 0.0001, rng),
        "jittery policy (1 mm noise)": jittery(smooth, 0.001, rng),
    }
    scale = path_metrics(smooth, dt)["mean_jerk"]
    rows = []
    for name, path in paths.items():
        m = path_metrics(path, dt)
        traj = Trajectory(ee_pos=path, actions=np.zeros((len(path) - 1, 7)), control_dt=dt, success=True)
        reward, _ = smooth_reward(traj, lam=lam, jerk_scale=scale)
        rows.append([name, m["mean_jerk"], m["mean_jerk"] / scale, m["ldlj"], m["sparc"],
                     m["path_length"], reward])
    print(f"Smoothness of one pick-and-place path ({len(smooth) - 1} steps at {control_hz:g} Hz),"
          " tracked five ways:\n")
    print(format_table(rows, ("trajectory", "mean jerk m/s^3", "x expert", "LDLJ", "SPARC",
                              "path m", f"smooth reward (lam={lam:g})")))
    print("\nAll five succeed; the hybrid reward 1[success](1 - lam * jerk / jerk_scale) pays the"
          " smooth one most.\nMetrics: docs/metrics.md.")
    return 0


def run(cfg: Config) -> int:
    if cfg.synthetic:
        return run_synthetic()
    os.environ.setdefault("MUJOCO_GL", "egl")
    study_cfg = cfg.study
    check_writable_output(study_cfg.out, "folder")
    start = time.perf_counter()
    out = Study(study_cfg).run()
    header, rows = summary_rows(out["results"], study_cfg.methods, out["expert_jerk"])
    print(f"\nsmoothvla {study_cfg.name}: {len(study_cfg.tasks) or 'all'} task(s) of "
          f"{study_cfg.suite}, {study_cfg.eval_init_states} init states, seeds {list(study_cfg.seeds)}; "
          f"smooth reward's jerk unit: {out['jerk_unit']}; experts' mean jerk "
          f"{out['expert_jerk']:.2f} m/s^3; "
          f"{time.perf_counter() - start:.0f} s this run\n")
    print(format_table(rows, header, digits=1))
    header, rows = smoothness_rows(out["results"], study_cfg.methods)
    print("\nsmoothness of successful episodes (in distribution)\n")
    print(format_table(rows, header, digits=1))
    print(f"\nreport: {Path(out['report']).resolve()}")
    return 0
