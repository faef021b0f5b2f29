"""The summary a report opens with: each policy's success and jerk in distribution with 95%
intervals, and paired tests against a reference policy (`smoothvla.eval.compare.paired`).

Success: Wilson interval; exact McNemar test on the episodes only one of the two policies
solved. Jerk: mean jerk of successful episodes with a Student-t interval; against the
reference, the relative change over the episodes both solved and the Wilcoxon signed-rank
p of the paired differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from smoothvla.eval.compare import PairedComparison, paired
from smoothvla.eval.results import EpisodeResult
from smoothvla.eval.stats import mean_ci, wilson_interval
from smoothvla.eval.summary import IND

PAPERS = (
    ("SmoothVLA", "2603.13925",
     "GRPO with a jerk-aware hybrid reward (its eq. 5); Tables 1-3 and the path figures here "
     "follow its layout"),
    ("What Can RL Bring to VLA Generalization? An Empirical Study (RL4VLA)", "2505.19789",
     "PPO vs GRPO vs DPO and the grasp / continuous-grasp metrics of the grasp tables"),
)
"""(name, arXiv id, what the report takes from it), cited at the top of every report."""


@dataclass
class Headline:
    """One policy's in-distribution numbers and its paired test against the reference."""

    policy: str
    episodes: int
    success: float
    success_ci: tuple[float, float]
    jerk: float
    """Mean jerk of successful episodes (m/s^3), NaN without any."""
    jerk_ci: tuple[float, float]
    versus: PairedComparison | None
    """Against the reference policy; None for the reference itself or without common episodes."""


def headlines(results: Sequence[EpisodeResult], order: Sequence[str],
              reference: str | None = None) -> list[Headline]:
    """In-distribution numbers of the policies in `order` that have such episodes; each
    compared with `reference` (default: 'sft' when present, else the first policy)."""
    ind: dict[str, list[EpisodeResult]] = {}
    for r in results:
        if r.perturbation == IND:
            ind.setdefault(r.policy, []).append(r)
    names = [p for p in order if p in ind]
    if reference is None:
        reference = "sft" if "sft" in ind else (names[0] if names else "")
    out = []
    for policy in names:
        rs = ind[policy]
        k = sum(r.success for r in rs)
        jerk, lo, hi = mean_ci([r.mean_jerk for r in rs if r.success])
        versus = None
        if policy != reference and reference in ind:
            c = paired(ind[reference], rs)
            versus = c if c.pairs else None
        out.append(Headline(policy, len(rs), k / len(rs), wilson_interval(k, len(rs)), jerk,
                            (lo, hi), versus))
    return out


def _p(p: float) -> str:
    return "-" if not math.isfinite(p) else f"{p:.2g}"


def headline_table(lines: Sequence[Headline], reference: str) -> tuple[list[str], list[list]]:
    """The summary as a table: success % [CI], jerk [CI], then against `reference`: episodes
    only it / only this policy solved with McNemar's p, jerk change over common successes
    with Wilcoxon's p."""
    header = ["policy", "episodes", "success % [95% CI]", "jerk of successes m/s³ [95% CI]",
              f"vs {reference}: lost / won", "McNemar p", "jerk change", "Wilcoxon p",
              "common successes"]
    rows = []
    for h in lines:
        lo, hi = h.success_ci
        jerk = "-" if not math.isfinite(h.jerk) else (
            f"{h.jerk:.1f}" + (f" [{h.jerk_ci[0]:.1f}, {h.jerk_ci[1]:.1f}]"
                               if math.isfinite(h.jerk_ci[0]) else ""))
        row = [h.policy, h.episodes, f"{100 * h.success:.1f} [{100 * lo:.0f}, {100 * hi:.0f}]",
               jerk]
        c = h.versus
        if c is None:
            row += ["-"] * 5
        else:
            change = "-" if not math.isfinite(c.jerk_change) else f"{100 * c.jerk_change:+.0f}%"
            row += [f"{c.only_a} / {c.only_b}", _p(c.success_p), change, _p(c.jerk_p),
                    c.jerk_pairs]
        rows.append(row)
    return header, rows


def headline_sentences(lines: Sequence[Headline], reference: str, alpha: float = 0.05
                       ) -> list[str]:
    """Plain sentences a reader can act on: for each policy against the reference, whether
    success and jerk changed, and whether the paired test can tell (p < alpha)."""
    out = []
    ref = next((h for h in lines if h.policy == reference), None)
    for h in lines:
        c = h.versus
        if c is None or ref is None:
            continue
        sig = "significant" if c.success_p < alpha else "not significant"
        text = (f"{h.policy}: success {100 * h.success:.0f}% vs {100 * ref.success:.0f}% for "
                f"{reference} ({c.pairs} paired episodes; {c.only_b} won, {c.only_a} lost; "
                f"McNemar p = {_p(c.success_p)}, {sig})")
        if math.isfinite(c.jerk_change):
            sig = ("significant" if math.isfinite(c.jerk_p) and c.jerk_p < alpha
                   else "not significant")
            word = "smoother" if c.jerk_change < 0 else "jerkier"
            text += (f"; {abs(100 * c.jerk_change):.0f}% {word} over the {c.jerk_pairs} "
                     f"episodes both solved (Wilcoxon p = {_p(c.jerk_p)}, {sig})")
        else:
            text += "; no episode both solved, so no paired jerk comparison"
        out.append(text + ".")
    finite = [h for h in lines if math.isfinite(h.jerk)]
    if finite:
        best = max(lines, key=lambda h: (h.success, -np.nan_to_num(h.jerk, nan=np.inf)))
        smooth = min(finite, key=lambda h: h.jerk)
        out.append(f"Highest success: {best.policy} ({100 * best.success:.0f}%). Lowest jerk of "
                   f"successes: {smooth.policy} ({smooth.jerk:.1f} m/s³). Intervals are 95%; "
                   "overlapping intervals with a paired p above 0.05 are no evidence of a "
                   "difference.")
    return out
