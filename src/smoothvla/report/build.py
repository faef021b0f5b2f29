"""Build the study report from evaluation results (and RL training logs): markdown, LaTeX,
PNG figures and one self-contained HTML file."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from smoothvla.errors import UserError
from smoothvla.eval.results import EpisodeResult, read_results
from smoothvla.eval.summary import IND, summarize
from smoothvla.io import atomic_write_bytes, atomic_write_text, read_jsonl
from smoothvla.report import figures
from smoothvla.report.html import HtmlReport
from smoothvla.report.study_tables import (
    ablation_table,
    cell_table,
    grasp_table,
    jerk_source_table,
    jerk_table,
    robustness_table,
    to_latex,
)
from smoothvla.report.tables import format_table

# Display order of the study's methods when present.
METHOD_ORDER = ("sft", "grpo-binary", "smoothvla-grpo", "ppo", "dpo", "smoothvla-dpo",
                "grpo-random", "grpo-staged")
ABLATION = ("grpo-binary", "grpo-random", "smoothvla-grpo")


@dataclass
class ReportFiles:
    markdown: Path
    latex: Path
    html: Path
    figures: list[Path]


def _same_start(results: list[EpisodeResult], keep: Callable[[EpisodeResult], bool]
                ) -> tuple[dict[str, EpisodeResult], str]:
    """One kept in-distribution episode per policy, all from the first (task, init, seed)
    that the most policies recorded; and a description of that start."""
    by_cell = defaultdict(dict)
    for r in results:
        if keep(r) and r.perturbation == IND:
            by_cell[(r.task_id, r.init_id, r.seed)].setdefault(r.policy, r)
    if not by_cell:
        return {}, ""
    most = max(len(v) for v in by_cell.values())
    key = sorted(k for k, v in by_cell.items() if len(v) == most)[0]
    chosen = by_cell[key]
    order = [p for p in METHOD_ORDER if p in chosen] + sorted(set(chosen) - set(METHOD_ORDER))
    return {p: chosen[p] for p in order}, f"{key[0]}, init state {key[1]}, seed {key[2]}"


def _example_paths(results: list[EpisodeResult]) -> tuple[dict, dict, str]:
    """Paths of each policy from the first (task, init, seed) that every policy recorded."""
    chosen, where = _same_start(results, lambda r: bool(r.ee_path))
    paths = {p: np.asarray(r.ee_path) for p, r in chosen.items()}
    grasps = {p: r.grasp_step for p, r in chosen.items()}
    return paths, grasps, where


def build_report(results_paths: Sequence[str | Path], out_dir: str | Path,
                 log_paths: Sequence[str | Path] = (), title: str = "smoothvla study") -> ReportFiles:
    results = read_results(results_paths)
    if not results:
        raise UserError("the results files hold no episodes")
    out = Path(out_dir)
    cells = summarize(results)
    policies = [p for p in METHOD_ORDER if p in {c.policy for c in cells}]
    policies += sorted({c.policy for c in cells} - set(policies))
    suites = sorted({c.suite for c in cells})
    tables: list[tuple[str, tuple]] = [("Mean jerk of successful episodes, in distribution "
                                        "(m/s³; SmoothVLA Table 1)", jerk_table(cells, policies))]
    for suite in suites:
        if any(c.suite == suite and c.perturbation != IND for c in cells):
            tables.append((f"Robustness on {suite}: success % (↓ points lost; SmoothVLA Table 2)",
                           robustness_table(cells, suite, policies)))
    ablation = [p for p in ABLATION if p in policies]
    if len(ablation) >= 2:
        for suite in suites:
            tables.append((f"Reward ablation on {suite}: success % (SmoothVLA Table 3)",
                           ablation_table(cells, suite, ablation)))
    for suite in suites:
        tables.append((f"Grasp accuracy, continuous grasp and success on {suite} "
                       "(RL4VLA Tables 1-3)", grasp_table(cells, suite, policies)))
    sources = jerk_source_table(cells, policies)
    if sources[1]:
        tables.append(("Where the jerk comes from, in distribution: % of jerk windows and % of "
                       "the summed jerk at chunk boundaries and near gripper events, mean jerk "
                       "per class (m/s³), averaged over episodes", sources))
    tables.append(("All cells with 95% confidence intervals (Wilson for success, Student t "
                   "for jerk)", cell_table(cells)))

    figs: list[tuple[str, str, bytes]] = []
    paths, grasps, where = _example_paths(results)
    if paths:
        figs.append(("paths", f"End-effector paths from the same initial state ({where})",
                     figures.paths_3d(paths, grasps)))
    traced, where = _same_start(results, lambda r: bool(r.jerk_trace))
    if traced:
        figs.append(("jerk_over_time", f"Jerk along the path, chunk boundaries dotted, gripper "
                     f"events red ({where})", figures.jerk_over_time(traced)))
    figs.append(("jerk_bars", "Mean jerk per suite (successful in-distribution episodes)",
                 figures.jerk_bars(cells, policies)))
    figs.append(("success_vs_jerk", "Success against mean jerk per cell",
                 figures.success_vs_jerk(cells)))
    logs = {Path(p).parent.name or Path(p).stem: read_jsonl(p) for p in log_paths}
    if logs:
        figs.append(("training", "RL training curves", figures.training_curves(logs)))

    fig_paths = [atomic_write_bytes(out / "figures" / f"{name}.png", png) for name, _, png in figs]
    md = [f"# {title}", "", f"{len(results)} evaluation episodes, {len(policies)} policies.", ""]
    tex = []
    page = HtmlReport(title)
    page.paragraph(f"{len(results)} evaluation episodes; policies: {', '.join(policies)}.")
    for caption, (header, rows) in tables:
        md += [f"## {caption}", "", format_table(rows, header, markdown=True), ""]
        tex.append(to_latex(header, rows, caption))
        page.heading(caption)
        page.table(header, rows)
    for (name, caption, png), path in zip(figs, fig_paths):
        md += [f"![{caption}](figures/{path.name})", ""]
        page.heading(caption)
        page.figure(png, caption)
    return ReportFiles(
        markdown=atomic_write_text(out / "report.md", "\n".join(md)),
        latex=atomic_write_text(out / "report.tex", "\n\n".join(tex) + "\n"),
        html=atomic_write_text(out / "report.html", page.render()),
        figures=fig_paths,
    )
