"""Build the study report from evaluation results (and RL training logs): markdown, LaTeX,
PNG figures and one self-contained HTML file.

The report opens with a summary (report/headline.py): each policy's success and jerk in
distribution with 95% intervals and paired tests against SFT, the papers it follows, and
links down to the tables. Then, when the evaluation recorded videos (`smoothvla eval
--video`), the policies side by side from the same start with their jerk over time
(report/side_by_side.py). The videos are copied into `media/` beside report.md, with an
animated WebP of each that report.md shows; report.html embeds the MP4s as data URIs and stays one file, unless
they exceed `inline_media_mb` together, when it links to `media/` instead (keep the folder
with the page then)."""

from __future__ import annotations

import base64
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from smoothvla.errors import UserError
from smoothvla.eval.results import EpisodeResult, read_results
from smoothvla.eval.summary import IND, summarize
from smoothvla.io import atomic_write_bytes, atomic_write_text, read_jsonl
from smoothvla.report import figures, side_by_side
from smoothvla.report.headline import PAPERS, headline_sentences, headline_table, headlines
from smoothvla.report.html import HtmlReport
from smoothvla.report.video import webp_from_mp4
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
    media: list[Path] = field(default_factory=list)
    """Videos copied beside the report (media/): MP4 and WebP of each side-by-side panel."""
    media_inline: bool = True
    """Whether report.html carries the videos itself (data URIs) or links to media/."""


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


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
                 log_paths: Sequence[str | Path] = (), title: str = "smoothvla study", *,
                 max_views: int = 2, max_columns: int = 6,
                 inline_media_mb: float = 40.0, expert_jerk: float = float("nan")) -> ReportFiles:
    """Write report.md, report.tex, report.html, figures/ and media/ into `out_dir`.

    `max_views` side-by-side views (one per task) of at most `max_columns` policies each;
    `inline_media_mb`: the most MP4 megabytes report.html embeds (above it, it links).
    `expert_jerk` (m/s³, if given) is marked in the success-vs-jerk figure."""
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
                 figures.success_vs_jerk(cells, expert_jerk)))
    logs = {Path(p).parent.name or Path(p).stem: read_jsonl(p) for p in log_paths}
    if logs:
        figs.append(("training", "RL training curves", figures.training_curves(logs)))

    views = side_by_side.choose_views(results, results_paths, policies, max_views=max_views,
                                      max_columns=max_columns)
    for i, view in enumerate(views):
        figs.append((f"side_by_side_{i}", f"Jerk along the path of the videos above ({view.title})",
                     figures.jerk_over_time({p.label: p.result for p in view.panels})))
    sbs_figs = {f"side_by_side_{i}" for i in range(len(views))}

    fig_paths = [atomic_write_bytes(out / "figures" / f"{name}.png", png) for name, _, png in figs]
    md = [f"# {title}", ""]
    tex = []
    page = HtmlReport(title)
    media, inline = _summary(results, policies, tables, views, md, page, out, inline_media_mb)
    for caption, (header, rows) in tables:
        md += [f'<a id="{_anchor(caption)}"></a>', "", f"## {caption}", "",
               format_table(rows, header, markdown=True), ""]
        tex.append(to_latex(header, rows, caption))
        page.heading(caption, anchor=_anchor(caption))
        page.table(header, rows)
    for (name, caption, png), path in zip(figs, fig_paths):
        if name in sbs_figs:
            continue  # shown with its videos (report.md) or drawn under them (report.html)
        md += [f"![{caption}](figures/{path.name})", ""]
        page.heading(caption)
        page.figure(png, caption)
    return ReportFiles(
        markdown=atomic_write_text(out / "report.md", "\n".join(md)),
        latex=atomic_write_text(out / "report.tex", "\n\n".join(tex) + "\n"),
        html=atomic_write_text(out / "report.html", page.render()),
        figures=fig_paths,
        media=media,
        media_inline=inline,
    )


def _summary(results: list[EpisodeResult], policies: list[str], tables: list, views: list,
             md: list[str], page: HtmlReport, out: Path, inline_media_mb: float
             ) -> tuple[list[Path], bool]:
    """The opening of the report, into `md` and `page`: headline numbers, the papers, links
    to the tables, then the side-by-side videos (copied into out/media/). Returns the media
    files and whether the HTML embeds them."""
    reference = "sft" if "sft" in policies else policies[0]
    lines = headlines(results, policies, reference)
    header, rows = headline_table(lines, reference)
    sentences = headline_sentences(lines, reference)
    intro = (f"{len(results)} evaluation episodes, {len(policies)} policies: "
             f"{', '.join(policies)}. In distribution, each policy against {reference} on the "
             "same episodes (same task, initial state and seed): success with its Wilson 95% "
             "interval and the exact McNemar test; mean jerk of successful episodes with its "
             "Student-t 95% interval, and over the episodes both solved the relative change "
             "with the Wilcoxon signed-rank test.")
    papers = "; ".join(f"{name} (arXiv {arxiv}): {what}" for name, arxiv, what in PAPERS)
    links = [(caption, _anchor(caption)) for caption, _ in tables]
    if views:
        links.insert(0, ("Side by side: the policies from the same start", "side-by-side"))
    md += ['<a id="summary"></a>', "", "## Summary", "", intro, "",
           format_table(rows, header, markdown=True), ""]
    md += [f"- {s}" for s in sentences] + ["", f"Papers: {papers}.", "", "Contents:", ""]
    md += [f"- [{text}](#{a})" for text, a in links] + [""]
    page.heading("Summary", anchor="summary")
    page.paragraph(intro)
    page.table(header, rows)
    for sentence in sentences:
        page.paragraph(sentence)
    page.paragraph(f"Papers: {papers}.")
    page.links(links)
    if not views:
        return [], True

    media: list[Path] = []
    (out / "media").mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(views):
        for p in view.panels:
            stem = out / "media" / f"{i}_{_file(p.label)}"
            media += [Path(shutil.copyfile(p.mp4, stem.with_suffix(".mp4"))),
                      webp_from_mp4(p.mp4, stem.with_suffix(".webp"))]
    mp4s = {m.stem: m for m in media if m.suffix == ".mp4"}
    inline = sum(m.stat().st_size for m in mp4s.values()) <= inline_media_mb * 2**20

    def source(i: int):
        def src(p: side_by_side.Panel) -> str:
            path = mp4s[f"{i}_{_file(p.label)}"]
            if not inline:
                return f"media/{path.name}"
            return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
        return src

    explain = ("Each policy's recorded episode from the same task, initial state and seed, "
               "played together (one button, one slider), with its jerk norm over time "
               "underneath on one scale per row (dotted: chunk starts; the dark line follows "
               "the video). Frames are the policy's camera at the control rate.")
    md += ['<a id="side-by-side"></a>', "", "## Side by side: the policies from the same start",
           "", explain, ""]
    page.heading("Side by side: the policies from the same start", anchor="side-by-side")
    page.paragraph(explain + ("" if inline else " The videos are in media/ beside this page."))
    for i, view in enumerate(views):
        md += [f"### {view.title}", "",
               "| " + " | ".join(p.label for p in view.panels) + " |",
               "|" + "---|" * len(view.panels),
               "| " + " | ".join(f"![{p.label}](media/{i}_{_file(p.label)}.webp)"
                                 for p in view.panels) + " |",
               "| " + " | ".join(f"[MP4](media/{i}_{_file(p.label)}.mp4)"
                                 for p in view.panels) + " |", "",
               f"![jerk along the path](figures/side_by_side_{i}.png)", ""]
        page.heading(view.title, level=3)
        page.raw(side_by_side.view_html(view, source(i)), side_by_side.STYLE, side_by_side.SCRIPT)
    return media, inline


def _file(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", label)
