"""Paired comparisons of two policies on the same episodes.

Two evaluation episodes are a pair when they share task, init state, env seed and
perturbation (and strength): the same initial state and the same perturbation draw. A policy
trained with several seeds contributes one pair per training seed against a reference that
was evaluated once (e.g. the one SFT policy every RL run started from); when the reference
has several training seeds too, seed i pairs with seed i.

- success: the exact McNemar test on the discordant pairs (b: only A succeeded, c: only B);
- jerk: over pairs where both succeeded, the mean of B's jerk relative to A's, and the
  Wilcoxon signed-rank test of the paired differences (two-sided).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats

from smoothvla.eval.results import EpisodeResult


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial(b + c, 1/2))."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(b, c), n, 0.5)))


@dataclass
class PairedComparison:
    """B against A on their common episodes."""

    pairs: int
    only_a: int
    """Pairs where only A succeeded (McNemar's b)."""
    only_b: int
    """Pairs where only B succeeded (McNemar's c)."""
    success_p: float
    jerk_pairs: int
    """Pairs where both succeeded with a finite jerk."""
    jerk_change: float
    """mean(B's jerk) / mean(A's jerk) - 1 over those pairs (-0.2: B is 20% smoother)."""
    jerk_p: float
    """Wilcoxon signed-rank p of the paired jerk differences (NaN with < 2 pairs)."""


def _key(r: EpisodeResult) -> tuple:
    return (r.task_id, r.init_id, r.seed, r.perturbation, r.strength)


def paired(a: Iterable[EpisodeResult], b: Iterable[EpisodeResult]) -> PairedComparison:
    """Compare B with A (each a list of one policy's results) on their common episodes."""
    a = list(a)
    ref: dict[tuple, list[EpisodeResult]] = defaultdict(list)
    for r in a:
        ref[_key(r)].append(r)
    by_seed = any(len(v) > 1 for v in ref.values())
    if by_seed:  # both trained with several seeds: pair seed i with seed i
        ref = defaultdict(list)
        for r in a:
            ref[(*_key(r), r.train_seed)].append(r)
        if any(len(v) > 1 for v in ref.values()):
            raise ValueError("the reference policy has several results for one episode and "
                             "training seed (a results file with duplicates?)")
    only_a = only_b = 0
    jerk_a: list[float] = []
    jerk_b: list[float] = []
    pairs = 0
    for rb in b:
        match = ref.get((*_key(rb), rb.train_seed) if by_seed else _key(rb))
        if not match:
            continue
        ra = match[0]
        pairs += 1
        only_a += ra.success and not rb.success
        only_b += rb.success and not ra.success
        if ra.success and rb.success and math.isfinite(ra.mean_jerk) and math.isfinite(rb.mean_jerk):
            jerk_a.append(ra.mean_jerk)
            jerk_b.append(rb.mean_jerk)
    change = p_jerk = math.nan
    if jerk_a:
        change = float(np.mean(jerk_b) / np.mean(jerk_a) - 1)
    if len(jerk_a) >= 2 and np.any(np.subtract(jerk_b, jerk_a) != 0):
        p_jerk = float(stats.wilcoxon(jerk_b, jerk_a).pvalue)
    return PairedComparison(pairs, only_a, only_b, mcnemar_exact(only_a, only_b), len(jerk_a),
                            change, p_jerk)
