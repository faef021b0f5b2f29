"""Matplotlib figures of the study, returned as PNG bytes (Agg backend, no display)."""

from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from smoothvla.eval.results import EpisodeResult  # noqa: E402
from smoothvla.eval.summary import IND, Cell  # noqa: E402

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def paths_3d(paths: Mapping[str, np.ndarray], grasp_steps: Mapping[str, int] | None = None,
             title: str = "", zoom: float = 0.04) -> bytes:
    """End-effector paths of several policies from the same initial state (SmoothVLA Fig. 2,
    3, 7), with a zoomed inset around the first policy's grasp point (±`zoom` m)."""
    fig = plt.figure(figsize=(10, 5))
    ax = fig.add_axes([0.0, 0.0, 0.62, 1.0], projection="3d")
    for (label, p), color in zip(paths.items(), COLORS):
        p = np.asarray(p)
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=color, lw=1.6, label=label)
        ax.scatter(*p[0], color=color, marker="o", s=18)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    grasp_steps = grasp_steps or {}
    anchor = next(((label, s) for label, s in grasp_steps.items() if s is not None and s >= 0), None)
    if anchor is not None:
        centre = np.asarray(paths[anchor[0]])[anchor[1]]
        inset = fig.add_axes([0.64, 0.25, 0.36, 0.6], projection="3d")
        for (label, p), color in zip(paths.items(), COLORS):
            p = np.asarray(p)
            near = np.all(np.abs(p - centre) <= zoom, axis=1)
            if near.any():
                seg = np.where(near, 1.0, np.nan)[:, None] * p
                inset.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=color, lw=1.4)
        for axis, c in zip("xyz", centre):
            getattr(inset, f"set_{axis}lim")(c - zoom, c + zoom)
        inset.set_xticklabels([])
        inset.set_yticklabels([])
        inset.set_zticklabels([])
        inset.set_title(f"zoom: ±{100 * zoom:.0f} cm around the grasp", fontsize=9)
    return _png(fig)


def jerk_bars(cells: Sequence[Cell], policies: Sequence[str] = ()) -> bytes:
    """Mean jerk of successful in-distribution episodes per suite and policy, with 95%
    intervals (SmoothVLA Fig. 5)."""
    ind = [c for c in cells if c.perturbation == IND]
    suites = sorted({c.suite for c in ind})
    names = list(policies) or sorted({c.policy for c in ind})
    idx = {(c.policy, c.suite): c for c in ind}
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(suites) + 2), 3.8))
    for i, (name, color) in enumerate(zip(names, COLORS)):
        xs, ys, err = [], [], [[], []]
        for j, s in enumerate(suites):
            c = idx.get((name, s))
            if c is None or not math.isfinite(c.mean_jerk):
                continue
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            ys.append(c.mean_jerk)
            lo, hi = c.mean_jerk_ci
            err[0].append(c.mean_jerk - lo if math.isfinite(lo) else 0)
            err[1].append(hi - c.mean_jerk if math.isfinite(hi) else 0)
        ax.bar(xs, ys, width, yerr=err, color=color, label=name, capsize=2)
    ax.set_xticks(range(len(suites)), suites)
    ax.set_ylabel("mean jerk (m/s³), successes")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def jerk_over_time(episodes: Mapping[str, EpisodeResult], title: str = "") -> bytes:
    """Where along the path the jerk happens: one panel per policy with the jerk norm of
    each window over time (`EpisodeResult.jerk_trace`, window t at step t + 1.5), chunk
    boundaries (dotted, at the step where a chunk's first action starts) and gripper events
    (red, in the middle of the action during which they happen). Episodes need
    `jerk_trace`; `chunk_start_steps` and `event_steps` are drawn when present."""
    fig, axes = plt.subplots(len(episodes), 1, figsize=(10, 1.9 * len(episodes) + 0.6),
                             sharex=True, squeeze=False)
    for ax, ((label, r), color) in zip(axes[:, 0], zip(episodes.items(), COLORS)):
        norms = np.asarray(r.jerk_trace, dtype=float)
        ax.plot(np.arange(len(norms)) + 1.5, norms, color=color, lw=1.2, label="jerk", zorder=3)
        for i, s in enumerate((r.chunk_start_steps or [])[1:]):
            ax.axvline(s, color="#555555", ls=":", lw=0.8, zorder=1,
                       label="chunk boundary" if i == 0 else None)
        for i, e in enumerate(r.event_steps or []):
            ax.axvline(e + 0.5, color="#C44E52", lw=1.4, zorder=2,
                       label="gripper event" if i == 0 else None)
        note = ""
        if math.isfinite(r.jerk_boundary_share):
            note = (f": boundary windows {100 * r.jerk_boundary_windows:.0f}% carry "
                    f"{100 * r.jerk_boundary_share:.0f}% of the jerk")
            if math.isfinite(r.jerk_event_share):
                note += (f", event windows {100 * r.jerk_event_windows:.0f}% carry "
                         f"{100 * r.jerk_event_share:.0f}%")
        ax.set_title(label + note, fontsize=9, loc="left")
        ax.set_ylabel("jerk (m/s³)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("control step")
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def success_vs_jerk(cells: Sequence[Cell], expert_jerk: float = float("nan")) -> bytes:
    """Success rate against mean jerk of successes, one point per (policy, suite,
    perturbation) cell with its 95% intervals (Wilson for success, Student t for jerk).
    A policy acted with an execution scheme ("grpo-binary+ensemble:1") has its method's
    colour and the scheme's marker; with more methods or schemes than colours or markers
    they repeat, never drop. `expert_jerk` (if finite) is drawn as a vertical line."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    split = {c.policy: (c.policy.split("+", 1) + [""])[:2] for c in cells}
    methods = list(dict.fromkeys(m for m, _ in split.values()))
    schemes = list(dict.fromkeys(s for _, s in split.values()))
    for name in dict.fromkeys(c.policy for c in cells):
        method, scheme = split[name]
        pts = [c for c in cells if c.policy == name and math.isfinite(c.mean_jerk)]
        if not pts:
            continue
        x = np.array([c.mean_jerk for c in pts])
        y = np.array([100 * c.success for c in pts])
        xerr = np.array([[c.mean_jerk - c.mean_jerk_ci[0], c.mean_jerk_ci[1] - c.mean_jerk]
                         for c in pts]).T
        yerr = np.array([[100 * (c.success - c.success_ci[0]), 100 * (c.success_ci[1] - c.success)]
                         for c in pts]).T
        ax.errorbar(x, y, xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr), fmt="none",
                    ecolor=COLORS[methods.index(method) % len(COLORS)], alpha=0.35, lw=1)
        ax.scatter(x, y, color=COLORS[methods.index(method) % len(COLORS)],
                   marker=MARKERS[schemes.index(scheme) % len(MARKERS)], label=name,
                   s=[40 if c.perturbation == IND else 16 for c in pts], zorder=3)
    if math.isfinite(expert_jerk):
        ax.axvline(expert_jerk, color="k", ls=":", lw=1, label="experts' jerk")
    ax.set_xlabel("mean jerk of successes (m/s³)")
    ax.set_ylabel("success (%)")
    labels = ax.get_legend_handles_labels()[1]
    if len(labels) > 8:  # beside the axes, where it covers no point
        ax.legend(fontsize=7, ncol=1 + len(labels) // 16, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif labels:  # none when no cell has a finite jerk
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("large points: in distribution; bars: 95% intervals", fontsize=9)
    return _png(fig)


def training_curves(logs: Mapping[str, Sequence[Mapping[str, float]]],
                    keys: Sequence[str] = ("success_rate", "mean_jerk")) -> bytes:
    """One panel per logged key against the update index, one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for (label, records), color in zip(logs.items(), COLORS):
            pts = [(r.get("update", i), r[key]) for i, r in enumerate(records)
                   if key in r and r[key] is not None and math.isfinite(r[key])]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, color=color, label=label, lw=1.4)
        ax.set_xlabel("update")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _png(fig)
