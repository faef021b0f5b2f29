"""Aggregate episode results into cells: means with 95% intervals and relative drops."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from smoothvla.eval.results import EpisodeResult, check_labels
from smoothvla.eval.stats import mean_ci, relative_drop, wilson_interval
from smoothvla.metrics.attribution import SPLIT_KEYS

IND = "none"


@dataclass
class Cell:
    """All episodes of one (policy, suite, perturbation) cell."""

    policy: str
    suite: str
    perturbation: str
    episodes: int
    success: float
    success_ci: tuple[float, float]
    success_seed_std: float
    """Std over training seeds of the per-seed success rate (0 with one seed)."""
    grasp: float
    cont_grasp: float
    mean_jerk: float
    mean_jerk_ci: tuple[float, float]
    ldlj: float
    sparc: float
    steps: float
    chunk_jump: float
    drop: float = float("nan")
    """(success - success in distribution) / success in distribution, same policy and suite."""
    jerk_split: dict[str, float] = field(default_factory=dict)
    """Where the jerk comes from (`metrics.attribution.SPLIT_KEYS`), each the mean over the
    successful episodes that have it (NaN-free), like the other smoothness columns."""
    jerk_split_all: dict[str, float] = field(default_factory=dict)
    """The same over all episodes, failures included."""


def _split_means(results: list[EpisodeResult]) -> dict[str, float]:
    """Per split key, the mean over the episodes where it is defined (NaN if none is)."""
    return {k: mean_ci([getattr(r, k) for r in results])[0] for k in SPLIT_KEYS}


def _seed_std(results: list[EpisodeResult]) -> float:
    by_seed = defaultdict(list)
    for r in results:
        by_seed[r.train_seed].append(r.success)
    rates = [np.mean(v) for v in by_seed.values()]
    return float(np.std(rates)) if len(rates) > 1 else 0.0


def summarize(results: Iterable[EpisodeResult], by_suite: bool = True) -> list[Cell]:
    """One Cell per (policy, suite or 'all', perturbation), in-distribution drop filled in.

    Smoothness columns average successful episodes only: a failed episode's jerk
    describes a different motion (often a stall) and would make failure look smooth.
    Raises UserError for a label that mixes settings or checkpoints (`check_labels`)."""
    results = list(results)
    check_labels(results)
    groups: dict[tuple, list[EpisodeResult]] = defaultdict(list)
    for r in results:
        groups[(r.policy, r.suite if by_suite else "all", r.perturbation)].append(r)
    cells = []
    for (policy, suite, pert), rs in sorted(groups.items()):
        n = len(rs)
        k = sum(r.success for r in rs)
        ok = [r for r in rs if r.success]
        jerk_mean, jerk_lo, jerk_hi = mean_ci([r.mean_jerk for r in ok])
        cells.append(Cell(
            policy=policy, suite=suite, perturbation=pert, episodes=n,
            success=k / n, success_ci=wilson_interval(k, n), success_seed_std=_seed_std(rs),
            grasp=float(np.mean([r.grasp for r in rs])),
            cont_grasp=float(np.mean([r.cont_grasp for r in rs])),
            mean_jerk=jerk_mean, mean_jerk_ci=(jerk_lo, jerk_hi),
            ldlj=mean_ci([r.ldlj for r in ok])[0], sparc=mean_ci([r.sparc for r in ok])[0],
            steps=float(np.mean([r.steps for r in rs])),
            chunk_jump=mean_ci([r.chunk_jump for r in ok])[0],
            jerk_split=_split_means(ok), jerk_split_all=_split_means(rs),
        ))
    ind = {(c.policy, c.suite): c.success for c in cells if c.perturbation == IND}
    for c in cells:
        if (c.policy, c.suite) in ind:
            c.drop = relative_drop(c.success, ind[(c.policy, c.suite)])
    return cells
