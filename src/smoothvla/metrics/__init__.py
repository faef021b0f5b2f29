"""Smoothness metrics on sampled trajectories: pure NumPy functions, shapes in docstrings.

See docs/metrics.md for each formula and its units.
"""

from smoothvla.metrics.attribution import gripper_events, jerk_sources, jerk_trace
from smoothvla.metrics.joints import ee_jerk_from_joints
from smoothvla.metrics.kinematics import (
    action_jumps,
    chunk_boundary_jump,
    duration,
    idle_ratio,
    jerk,
    mean_jerk,
    path_length,
    presmooth,
    speeds,
)
from smoothvla.metrics.spectral import ldlj, sparc
from smoothvla.metrics.summary import METRIC_UNITS, path_metrics

__all__ = [
    "METRIC_UNITS",
    "action_jumps",
    "chunk_boundary_jump",
    "duration",
    "ee_jerk_from_joints",
    "gripper_events",
    "idle_ratio",
    "jerk",
    "jerk_sources",
    "jerk_trace",
    "ldlj",
    "mean_jerk",
    "path_length",
    "path_metrics",
    "presmooth",
    "sparc",
    "speeds",
]
