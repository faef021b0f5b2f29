"""Side-by-side rollout videos: the policies of a study from the same task, initial state and
seed, played together, each with its jerk over time underneath (the jerk norm per step,
chunk boundaries dotted, a cursor at the frame shown).

Videos come from `smoothvla eval --video` (report/video.py): a sidecar per episode names
it, and the report pairs it with that episode's results row, whose `jerk_trace` and
`chunk_start_steps` draw the trace. In the HTML report the videos are H.264 MP4s embedded
as data URIs (or linked files, see `build.build_report`), synchronised by a few lines of
JavaScript: one play button and one slider for all of them; in report.md animated WebPs made
from them.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from smoothvla.eval.results import EpisodeResult
from smoothvla.eval.summary import IND
from smoothvla.report.video import EpisodeVideo, find_videos, results_video_dir

TRACE_W, TRACE_H = 256, 72
"""Size of a jerk trace in CSS pixels (the videos are at least 256 px wide)."""


@dataclass
class Panel:
    """One policy's episode: its results row, its video sidecar and the sidecar's folder."""

    label: str
    result: EpisodeResult
    video: EpisodeVideo
    folder: Path

    @property
    def mp4(self) -> Path:
        return self.folder / self.video.mp4



@dataclass
class View:
    """The panels of one (task, init state, seed), in display order."""

    task_id: str
    init_id: int
    seed: int
    panels: list[Panel]

    @property
    def title(self) -> str:
        return f"{self.task_id}, init state {self.init_id}, seed {self.seed}"


def _key(r: EpisodeResult | EpisodeVideo) -> tuple:
    return (r.policy, r.train_seed, r.task_id, r.init_id, r.seed, r.perturbation, r.strength)


def choose_views(results: Sequence[EpisodeResult], results_paths: Sequence[str | Path],
                 order: Sequence[str], *, max_views: int = 2, max_columns: int = 6) -> list[View]:
    """In-distribution starts filmed for the most policies, at most one per task and
    `max_views` in all; in each, the policies of `order` that have a video there (their
    lowest training seed), base policies before execution variants (POLICY+SCHEME), at most
    `max_columns`. Only videos whose episode is in `results` and carries a jerk trace count."""
    rows = {_key(r): r for r in results if r.jerk_trace}
    starts: dict[tuple, dict[str, Panel]] = defaultdict(dict)
    found = [f for p in results_paths for f in find_videos(results_video_dir(p))]
    for video, folder in sorted(found, key=lambda f: _key(f[0])):
        row = rows.get(_key(video))
        if row is None or video.perturbation != IND:
            continue
        starts[(video.task_id, video.init_id, video.seed)].setdefault(
            video.policy, Panel(video.policy, row, video, folder))
    ranked = sorted(starts, key=lambda k: (-len(starts[k]), k))
    columns = [p for p in order if "+" not in p] + [p for p in order if "+" in p]
    views, tasks = [], set()
    for task, init, seed in ranked:
        if task in tasks or len(views) >= max_views:
            continue
        tasks.add(task)
        panels = [starts[(task, init, seed)][p] for p in columns if p in starts[(task, init, seed)]]
        views.append(View(task, init, seed, panels[:max_columns]))
    return views


def trace_svg(result: EpisodeResult, steps: int, y_max: float,
              width: int = TRACE_W, height: int = TRACE_H) -> str:
    """Inline SVG of `result.jerk_trace` (window t at step t + 1.5) over steps 0..`steps`,
    scaled to `y_max` m/s³ (shared by the panels of a view, so heights compare), chunk
    boundaries as dotted lines and a cursor line (class "cursor") the player moves."""
    norms = np.asarray(result.jerk_trace, dtype=float)
    pad = 12  # room for the scale label

    def x(step: float) -> float:
        return round(width * step / max(steps, 1), 1)

    def y(value: float) -> float:
        return round(height - (height - pad) * min(value / y_max, 1.0), 1) if y_max > 0 else height

    parts = [f'<svg class="trace" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="jerk over time">',
             f'<rect width="{width}" height="{height}" fill="#fafafa"/>']
    for s in (result.chunk_start_steps or [])[1:]:
        parts.append(f'<line x1="{x(s)}" x2="{x(s)}" y1="{pad}" y2="{height}" stroke="#999" '
                     'stroke-width="0.6" stroke-dasharray="2,2"/>')
    points = " ".join(f"{x(t + 1.5)},{y(v)}" for t, v in enumerate(norms) if math.isfinite(v))
    parts.append(f'<polyline fill="none" stroke="#C44E52" stroke-width="1.2" points="{points}"/>')
    parts.append(f'<text x="2" y="9" font-size="9" fill="#555">jerk, 0-{y_max:.3g} m/s³ '
                 '(dotted: chunk starts)</text>')
    parts.append(f'<line class="cursor" x1="0" x2="0" y1="0" y2="{height}" stroke="#222" '
                 'stroke-width="1"/></svg>')
    return "".join(parts)


def view_html(view: View, source: Callable[[Panel], str]) -> str:
    """The HTML block of one view; `source(panel)` gives each video's src (a data URI or a
    relative path)."""
    y_max = max((float(np.nanmax(p.result.jerk_trace)) for p in view.panels
                 if len(p.result.jerk_trace or [])), default=1.0)
    steps = max(p.video.steps for p in view.panels)
    fps = view.panels[0].video.fps
    cells = []
    for p in view.panels:
        r = p.result
        jerk = f"mean jerk {r.mean_jerk:.1f} m/s³" if math.isfinite(r.mean_jerk) else ""
        outcome = "success" if r.success else "failure"
        cells.append(
            f'<div class="sbs-panel"><div class="sbs-label"><b>{html.escape(p.label)}</b> '
            f'{outcome}, {r.steps} steps{", " + jerk if jerk else ""}</div>'
            f'<video muted playsinline preload="auto" data-steps="{p.video.steps}" '
            f'src="{html.escape(source(p))}"></video>'
            f"{trace_svg(r, p.video.steps, y_max)}</div>")
    return (f'<div class="sbs" data-fps="{fps:g}" data-steps="{steps}">'
            '<div class="sbs-controls"><button type="button" class="sbs-play">play all</button> '
            f'<input type="range" class="sbs-seek" min="0" max="{steps}" step="1" value="0"> '
            f'<span class="sbs-step">step 0 / {steps}</span></div>'
            f'<div class="sbs-grid">{"".join(cells)}</div></div>')


STYLE = """
.sbs-grid { display: flex; flex-wrap: wrap; gap: 10px; }
.sbs-panel { width: 256px; font-size: 12px; }
.sbs-label { height: 2.7em; overflow: hidden; }
.sbs-panel video { width: 256px; display: block; background: #000; }
.sbs-panel svg { display: block; margin-top: 2px; }
.sbs-controls { margin: 6px 0; font-size: 13px; }
.sbs-seek { width: 420px; vertical-align: middle; }
"""

SCRIPT = """
document.querySelectorAll('.sbs').forEach(function (box) {
  var fps = parseFloat(box.dataset.fps), steps = parseInt(box.dataset.steps, 10);
  var videos = Array.prototype.slice.call(box.querySelectorAll('video'));
  var seek = box.querySelector('.sbs-seek'), label = box.querySelector('.sbs-step');
  var play = box.querySelector('.sbs-play');
  videos.forEach(function (v) {
    v.addEventListener('loadedmetadata', function () { v.dataset.duration = v.duration; });
  });
  function now() { return Math.max.apply(null, videos.map(function (v) { return v.currentTime; })); }
  function step() { return Math.min(Math.round(now() * fps), steps); }
  function draw() {
    videos.forEach(function (v) {
      var n = parseInt(v.dataset.steps, 10), s = Math.min(v.currentTime * fps, n);
      var c = v.parentNode.querySelector('.cursor'), x = 256 * s / Math.max(n, 1);
      c.setAttribute('x1', x); c.setAttribute('x2', x);
    });
    var s = step(); seek.value = s; label.textContent = 'step ' + s + ' / ' + steps;
    if (!videos.every(function (v) { return v.paused || v.ended; })) requestAnimationFrame(draw);
  }
  function goto(s) {
    videos.forEach(function (v) {
      v.currentTime = Math.min(s, parseInt(v.dataset.steps, 10)) / fps;
    });
  }
  play.addEventListener('click', function () {
    var running = videos.some(function (v) { return !v.paused && !v.ended; });
    if (running) { videos.forEach(function (v) { v.pause(); }); play.textContent = 'play all'; return; }
    if (step() >= steps) goto(0);
    var t = now();
    videos.forEach(function (v) { if (t * fps < parseInt(v.dataset.steps, 10)) { v.currentTime = t; v.play(); } });
    play.textContent = 'pause'; requestAnimationFrame(draw);
  });
  seek.addEventListener('input', function () {
    videos.forEach(function (v) { v.pause(); }); play.textContent = 'play all';
    goto(parseInt(seek.value, 10)); setTimeout(draw, 50);
  });
  videos.forEach(function (v) { v.addEventListener('seeked', draw); });
});
"""
"""Keeps the videos of each view on the same step (one play button, one slider), moves the
cursors, and stores each video's duration in `data-duration` once its metadata loaded."""
