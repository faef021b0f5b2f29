"""Finite-difference kinematics of sampled paths: jerk, mean jerk, path length, idle ratio,
action jumps at chunk boundaries, and optional Savitzky-Golay pre-smoothing.

Units: positions in metres and dt in seconds give jerk in m/s^3.
SmoothVLA §2.2 and eq. 5 use the mean over time of the L2 norm of end-effector jerk.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from smoothvla.metrics._checks import as_dt, as_lengths, as_path


def presmooth(positions, window: int, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing along time; (T, D) or (B, T, D) -> same shape.

    Off everywhere by default: it lowers measured jerk by removing real high-frequency
    motion as well as sensor noise, so use it only on noisy measured data, and say so.
    `window` is odd and > `order`; `order` >= 3 keeps cubic motion (and its jerk) intact.
    """
    arr = as_path(positions)
    if window % 2 == 0 or window <= order:
        raise ValueError(f"Savitzky-Golay window must be odd and > order={order}, got {window}")
    if window > arr.shape[-2]:
        raise ValueError(f"Savitzky-Golay window {window} is longer than the path ({arr.shape[-2]})")
    return savgol_filter(arr, window, order, axis=-2)


def jerk(positions, dt, *, smooth_window: int = 0) -> np.ndarray:
    """Third finite difference divided by dt^3.

    j_t = (p_{t+3} - 3 p_{t+2} + 3 p_{t+1} - p_t) / dt^3, a second-order accurate estimate
    of the jerk at time (t + 1.5) dt.

    Args:
        positions: (T, D) or (B, T, D) samples at a fixed interval, T >= 4.
        dt: sampling interval in seconds (0.05 at a 20 Hz control rate).
        smooth_window: Savitzky-Golay window (odd) applied first; 0 = off (default).
    Returns:
        (T-3, D) or (B, T-3, D) jerk in position-units / s^3.
    """
    p = as_path(positions)
    dt = as_dt(dt)
    if smooth_window:
        p = presmooth(p, smooth_window)
    return np.diff(p, n=3, axis=-2) / dt**3


def _norm(x: np.ndarray) -> np.ndarray:
    """L2 norm over the last axis; einsum avoids np.linalg.norm's temporaries (2x faster)."""
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def mean_jerk(positions, dt, lengths=None, *, smooth_window: int = 0):
    """Mean over time of the L2 norm of jerk (SmoothVLA eq. 5's (1/T) sum_t ||Jerk(t)||_2).

    Args:
        positions: (T, D) -> a float; or (B, T, D) -> (B,) one value per trajectory.
        dt: sampling interval in seconds.
        lengths: (B,) valid samples per trajectory of a padded batch (>= 4 each); samples
            at index >= length are ignored. None = all T samples are valid.
        smooth_window: optional Savitzky-Golay pre-smoothing window (0 = off).
    """
    p = as_path(positions)
    norms = _norm(jerk(p, dt, smooth_window=smooth_window))
    if p.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths applies to batched (B, T, D) input only")
        return float(norms.mean())
    if lengths is None:
        return norms.mean(axis=-1)
    n = as_lengths(lengths, p.shape[0], p.shape[1])
    # Jerk sample t uses positions t..t+3, so it is valid while t + 3 < length.
    mask = np.arange(norms.shape[1])[None, :] < (n - 3)[:, None]
    return (norms * mask).sum(axis=1) / mask.sum(axis=1)


def speeds(positions, dt) -> np.ndarray:
    """(T, D) -> (T-1,) speed ||p_{t+1} - p_t|| / dt between consecutive samples."""
    p = as_path(positions, min_len=2)
    return np.linalg.norm(np.diff(p, axis=-2), axis=-1) / as_dt(dt)


def path_length(positions) -> float | np.ndarray:
    """Total distance travelled, sum_t ||p_{t+1} - p_t||; (T, D) -> float, (B, T, D) -> (B,)."""
    p = as_path(positions, min_len=2)
    total = np.linalg.norm(np.diff(p, axis=-2), axis=-1).sum(axis=-1)
    return float(total) if p.ndim == 2 else total


def duration(positions, dt) -> float:
    """Seconds spanned by T samples: (T - 1) * dt."""
    p = as_path(positions, min_len=1)
    return (p.shape[-2] - 1) * as_dt(dt)


def idle_ratio(positions, dt, speed_threshold: float = 0.01) -> float:
    """Fraction of control intervals in which the point moves slower than `speed_threshold`
    (m/s; default 1 cm/s). High values mean a policy that hesitates or stalls (RL4VLA App.
    A.2 filters such idle steps out of demonstrations)."""
    if speed_threshold < 0:
        raise ValueError(f"speed_threshold must be >= 0, got {speed_threshold}")
    p = as_path(positions, min_len=2)
    if p.ndim != 2:
        raise ValueError(f"idle_ratio takes one (T, D) path, got shape {p.shape}")
    return float(np.mean(speeds(p, dt) < speed_threshold))


def _chunk_start_mask(num_actions: int, chunk_starts) -> np.ndarray:
    if np.ndim(chunk_starts) == 0:
        size = int(chunk_starts)
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {chunk_starts}")
        return np.arange(num_actions) % size == 0
    mask = np.asarray(chunk_starts, dtype=bool)
    if mask.shape != (num_actions,):
        raise ValueError(f"chunk_starts must have shape ({num_actions},), got {mask.shape}")
    return mask


def action_jumps(actions, chunk_starts) -> tuple[np.ndarray, np.ndarray]:
    """Jumps ||a_t - a_{t-1}|| between consecutive commanded actions, split by where they are.

    Args:
        actions: (N, A) executed actions.
        chunk_starts: (N,) bool, True where a new policy chunk begins; or an int chunk size.
    Returns:
        (at_boundaries, within_chunks): jumps into the first action of each new chunk, and
        jumps between actions of the same chunk. A policy whose chunks do not join up shows
        boundary jumps much larger than within-chunk jumps.
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"actions must have shape (N, A), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("actions contain NaN or inf")
    starts = _chunk_start_mask(len(a), chunk_starts)
    if len(a) < 2:
        return np.zeros(0), np.zeros(0)
    jumps = np.linalg.norm(np.diff(a, axis=0), axis=-1)
    at_boundary = starts[1:]
    return jumps[at_boundary], jumps[~at_boundary]


def chunk_boundary_jump(actions, chunk_starts) -> float:
    """Mean jump in commanded action at chunk boundaries (0 when there is one chunk)."""
    boundary, _ = action_jumps(actions, chunk_starts)
    return float(boundary.mean()) if len(boundary) else 0.0
