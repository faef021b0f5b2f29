"""All smoothness metrics of one path in one dict (what `smoothvla jerk` and eval report)."""

from __future__ import annotations

import numpy as np

from smoothvla.metrics.kinematics import chunk_boundary_jump, duration, idle_ratio, mean_jerk, path_length
from smoothvla.metrics.spectral import ldlj, sparc

METRIC_UNITS = {
    "steps": "",
    "duration": "s",
    "path_length": "m",
    "mean_jerk": "m/s^3",
    "ldlj": "",
    "sparc": "",
    "idle_ratio": "",
    "chunk_jump": "action units",
}


def path_metrics(
    positions,
    dt: float,
    *,
    actions=None,
    chunk_starts=None,
    smooth_window: int = 0,
) -> dict[str, float]:
    """Metrics of one (T, 3) path sampled every `dt` seconds.

    Keys: steps, duration, path_length, mean_jerk, ldlj, sparc, idle_ratio, and chunk_jump
    when `actions` and `chunk_starts` are given. LDLJ and SPARC are NaN for a path that
    never moves (they are undefined there), so one idle episode does not stop a report.
    """
    p = np.asarray(positions, dtype=np.float64)
    out = {
        "steps": float(len(p) - 1),
        "duration": duration(p, dt),
        "path_length": path_length(p),
        "mean_jerk": mean_jerk(p, dt, smooth_window=smooth_window),
        "idle_ratio": idle_ratio(p, dt),
    }
    moves = out["path_length"] > 0
    out["ldlj"] = ldlj(p, dt) if moves else float("nan")
    out["sparc"] = sparc(p, dt) if moves else float("nan")
    if actions is not None and chunk_starts is not None:
        out["chunk_jump"] = chunk_boundary_jump(actions, chunk_starts)
    return out
