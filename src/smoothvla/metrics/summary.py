"""All smoothness metrics of one path in one dict (what `smoothvla jerk` and eval report)."""

from __future__ import annotations

import numpy as np

from smoothvla.metrics.attribution import SPLIT_KEYS, jerk_sources
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
    **{k: "" if k.endswith(("_share", "_windows")) else "m/s^3" for k in SPLIT_KEYS},
}


def path_metrics(
    positions,
    dt: float,
    *,
    actions=None,
    chunk_starts=None,
    gripper_actions=None,
    grasping=None,
    smooth_window: int = 0,
) -> dict[str, float]:
    """Metrics of one (T, 3) path sampled every `dt` seconds.

    Keys: steps, duration, path_length, mean_jerk, ldlj, sparc, idle_ratio; chunk_jump
    when `actions` and `chunk_starts` are given; and when `chunk_starts` ((T-1,) bool or an
    int chunk size) is given, where the jerk comes from (`attribution.jerk_sources`, keys
    `attribution.SPLIT_KEYS`), with gripper events from `gripper_actions` (T-1,) and
    `grasping` (T,) when given. LDLJ and SPARC are NaN for a path that never moves (they
    are undefined there), so one idle episode does not stop a report.
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
    if chunk_starts is not None:
        split = jerk_sources(p, dt, chunk_starts, gripper_actions=gripper_actions,
                             grasping=grasping, smooth_window=smooth_window)
        out.update({k: split[k] for k in SPLIT_KEYS})
    return out
