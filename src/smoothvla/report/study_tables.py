"""The seeds' tables from evaluation cells, as rows ready for markdown, HTML or LaTeX.

- `jerk_table`: SmoothVLA Table 1 (mean jerk per suite, in distribution)
- `robustness_table`: SmoothVLA Table 2 (success under perturbations, drop from original)
- `ablation_table`: SmoothVLA Table 3 (rewards compared on one suite, deltas to the best)
- `grasp_table`: RL4VLA Tables 1-3 (grasp / continuous grasp / success, std over seeds)
- `jerk_source_table`: where the jerk comes from (chunk boundaries, inside chunks, gripper
  events), in distribution

Each returns (header, rows); rows hold strings and floats.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from smoothvla.eval.summary import IND, Cell

Table = tuple[list[str], list[list]]


def _order(items: Sequence[str], preferred: Sequence[str]) -> list[str]:
    known = [p for p in preferred if p in items]
    return known + sorted(set(items) - set(known))


def _index(cells: list[Cell]) -> dict[tuple, Cell]:
    return {(c.policy, c.suite, c.perturbation): c for c in cells}


def pct(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def jerk_table(cells: list[Cell], policies: Sequence[str] = ()) -> Table:
    """Rows: policy; columns: suites, then the average over suites (m/s^3, successes)."""
    idx = _index(cells)
    suites = sorted({c.suite for c in cells if c.perturbation == IND})
    header = ["Model"] + suites + ["Average"]
    rows = []
    for p in _order(sorted({c.policy for c in cells}), policies):
        values = [idx[(p, s, IND)].mean_jerk if (p, s, IND) in idx else float("nan") for s in suites]
        finite = [v for v in values if math.isfinite(v)]
        rows.append([p] + values + [float(np.mean(finite)) if finite else float("nan")])
    return header, rows


def robustness_table(cells: list[Cell], suite: str, policies: Sequence[str] = ()) -> Table:
    """SmoothVLA Table 2 layout: success % in distribution, then per perturbation
    `x ↓ d` (d = points lost), then the average over perturbations with the mean relative
    drop (OOD - IND) / IND."""
    idx = _index(cells)
    perts = sorted({c.perturbation for c in cells if c.suite == suite and c.perturbation != IND})
    header = ["Method", "Original"] + perts + ["Average", "rel. drop"]
    rows = []
    for p in _order(sorted({c.policy for c in cells if c.suite == suite}), policies):
        ind = idx.get((p, suite, IND))
        base = ind.success if ind else float("nan")
        row, values, drops = [p, pct(base)], [], []
        for pert in perts:
            c = idx.get((p, suite, pert))
            if c is None:
                row.append("–")
                continue
            values.append(c.success)
            drops.append(c.drop)
            row.append(f"{pct(c.success)} ↓ {pct(base - c.success)}" if ind else pct(c.success))
        avg = float(np.mean(values)) if values else float("nan")
        row.append(f"{pct(avg)} ↓ {pct(base - avg)}" if ind and values else pct(avg))
        finite = [d for d in drops if math.isfinite(d)]
        row.append(f"{100 * np.mean(finite):+.1f}%" if finite else "–")
        rows.append(row)
    return header, rows


def ablation_table(cells: list[Cell], suite: str, rewards: Sequence[str],
                   reference: str | None = None) -> Table:
    """SmoothVLA Table 3 layout: one row per reward variant (success %), each followed by a
    Δ row against `reference` (default: the last of `rewards`, e.g. the smooth reward)."""
    idx = _index(cells)
    perts = [IND] + sorted({c.perturbation for c in cells if c.suite == suite and c.perturbation != IND})
    header = ["Reward"] + ["In-dom" if p == IND else p for p in perts] + ["Avg"]
    reference = reference or rewards[-1]

    def values(policy: str) -> list[float]:
        v = [idx[(policy, suite, p)].success if (policy, suite, p) in idx else float("nan") for p in perts]
        return v + [float(np.nanmean(v)) if any(math.isfinite(x) for x in v) else float("nan")]

    ref = values(reference) if any((reference, suite, p) in idx for p in perts) else None
    rows = []
    for r in rewards:
        if not any((r, suite, p) in idx for p in perts):
            continue
        v = values(r)
        rows.append([r] + [pct(x) for x in v])
        if ref is not None and r != reference:
            rows.append(["Δ"] + [f"{100 * (a - b):+.1f}" if math.isfinite(a - b) else "–"
                                 for a, b in zip(v, ref)])
    return header, rows


def grasp_table(cells: list[Cell], suite: str, policies: Sequence[str]) -> Table:
    """RL4VLA Tables 1-3 layout: rows = condition (IND first, then perturbations);
    column groups Acc. / Cont. Acc. / Suc., one column per policy, std over training
    seeds in parentheses for success."""
    idx = _index(cells)
    perts = [IND] + sorted({c.perturbation for c in cells if c.suite == suite and c.perturbation != IND})
    header = ["Condition"]
    for metric in ("Acc.", "Cont. Acc.", "Suc."):
        header += [f"{metric} {p}" for p in policies]
    rows = []
    for pert in perts:
        row = ["IND" if pert == IND else pert]
        for attr in ("grasp", "cont_grasp", "success"):
            for p in policies:
                c = idx.get((p, suite, pert))
                if c is None:
                    row.append("–")
                elif attr == "success" and c.success_seed_std > 0:
                    row.append(f"{c.success:.3f} ({c.success_seed_std:.3f})")
                else:
                    row.append(f"{getattr(c, attr):.3f}")
        rows.append(row)
    return header, rows


def jerk_source_table(cells: list[Cell], policies: Sequence[str] = ()) -> Table:
    """Rows: (policy, suite) in distribution, over successful episodes and over all; columns:
    per class the % of jerk windows, the % of the summed jerk, and the mean jerk of its
    windows (m/s^3), each averaged over episodes (docs/metrics.md). Cells without the split
    (older results) are left out."""
    header = ["Model", "suite", "episodes",
              "boundary windows %", "boundary jerk %", "boundary jerk",
              "inside jerk",
              "event windows %", "event jerk %", "event jerk"]
    ind = {(c.policy, c.suite): c for c in cells if c.perturbation == IND}
    rows = []
    for p in _order(sorted({c.policy for c in ind.values()}), policies):
        for suite in sorted(s for q, s in ind if q == p):
            c = ind[(p, suite)]
            for over, split in (("successes", c.jerk_split), ("all", c.jerk_split_all)):
                if not any(math.isfinite(v) for v in split.values()):
                    continue
                rows.append([p, suite, over,
                             pct(split["jerk_boundary_windows"]), pct(split["jerk_boundary_share"]),
                             split["jerk_boundary"], split["jerk_inside"],
                             pct(split["jerk_event_windows"]), pct(split["jerk_event_share"]),
                             split["jerk_event"]])
    return header, rows


def cell_table(cells: list[Cell]) -> Table:
    """Every cell with its 95% intervals: the full numbers behind the other tables."""
    header = ["policy", "suite", "perturbation", "episodes", "success %", "95% CI",
              "drop", "grasp %", "cont. grasp %", "mean jerk", "jerk 95% CI", "LDLJ", "SPARC",
              "steps", "chunk jump"]
    rows = []
    for c in cells:
        lo, hi = c.success_ci
        jlo, jhi = c.mean_jerk_ci
        rows.append([
            c.policy, c.suite, c.perturbation, c.episodes, pct(c.success),
            f"[{pct(lo)}, {pct(hi)}]",
            "–" if not math.isfinite(c.drop) or c.perturbation == IND else f"{100 * c.drop:+.1f}%",
            pct(c.grasp), pct(c.cont_grasp), c.mean_jerk,
            "–" if not math.isfinite(jlo) else f"[{jlo:.3g}, {jhi:.3g}]",
            c.ldlj, c.sparc, c.steps, c.chunk_jump,
        ])
    return header, rows


def to_latex(header: list[str], rows: list[list], caption: str = "") -> str:
    """A booktabs LaTeX tabular."""

    def esc(x) -> str:
        s = f"{x:.3f}" if isinstance(x, float) else str(x)
        for a, b in (("%", r"\%"), ("_", r"\_"), ("↓", r"$\downarrow$"), ("Δ", r"$\Delta$"),
                     ("–", "--"), ("&", r"\&")):
            s = s.replace(a, b)
        return s

    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + esc(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines)
