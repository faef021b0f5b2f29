"""Synthetic end-effector paths with known smoothness, for demos, docs and tests."""

from __future__ import annotations

import numpy as np


def minimum_jerk(start, goal, duration: float, dt: float) -> np.ndarray:
    """Minimum-jerk point-to-point path (Flash & Hogan 1985):
    p(tau) = start + (goal - start)(10 tau^3 - 15 tau^4 + 6 tau^5), tau = t / duration.
    Returns (round(duration / dt) + 1, D)."""
    start, goal = np.asarray(start, float), np.asarray(goal, float)
    steps = int(round(duration / dt))
    tau = np.linspace(0.0, 1.0, steps + 1)[:, None]
    return start + (goal - start) * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)


def via_points(points, segment_duration: float, dt: float) -> np.ndarray:
    """Minimum-jerk segments through `points` (K, D), resting at each; (N, D)."""
    points = np.asarray(points, float)
    parts = [minimum_jerk(a, b, segment_duration, dt) for a, b in zip(points[:-1], points[1:])]
    return np.concatenate([parts[0]] + [p[1:] for p in parts[1:]])


def pick_place_path(dt: float = 0.05) -> np.ndarray:
    """A pick-and-place motion of a gripper over a table: approach, descend, lift, carry,
    descend, retreat (metres)."""
    points = [
        (0.45, -0.20, 0.30), (0.55, -0.10, 0.15), (0.55, -0.10, 0.03), (0.55, -0.10, 0.15),
        (0.50, 0.15, 0.18), (0.50, 0.15, 0.06), (0.45, 0.10, 0.25),
    ]
    return via_points(points, 1.2, dt)


def chunked(path: np.ndarray, chunk_size: int, offset_std: float, rng: np.random.Generator) -> np.ndarray:
    """The path as an open-loop chunked policy would track it: each chunk of `chunk_size`
    steps carries its own constant offset, so the motion steps at chunk boundaries."""
    offsets = rng.normal(0.0, offset_std, size=(len(path) // chunk_size + 1, path.shape[1]))
    return path + np.repeat(offsets, chunk_size, axis=0)[: len(path)]


def jittery(path: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """The path with independent per-step noise: the high-frequency jitter of a policy
    sampled with exploration noise."""
    return path + rng.normal(0.0, noise_std, size=path.shape)
