"""Input validation shared by the metrics: every bad input is a UserError (a ValueError)
that says what."""

from __future__ import annotations

import numpy as np

from smoothvla.errors import UserError


def as_path(positions, name: str = "positions", min_len: int = 4) -> np.ndarray:
    """Validate a trajectory array of shape (T, D) or (B, T, D); returns float64."""
    arr = np.asarray(positions, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise UserError(
            f"{name} must have shape (T, D) or (B, T, D), got an array with shape {arr.shape}"
        )
    if arr.shape[-2] < min_len:
        raise UserError(
            f"{name} needs at least {min_len} time samples, got {arr.shape[-2]} (shape {arr.shape})"
        )
    if arr.shape[-1] < 1:
        raise UserError(f"{name} has no spatial dimension (shape {arr.shape})")
    # One sum is several times cheaper than an elementwise isfinite pass, and NaN or inf
    # anywhere always makes it non-finite.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if not np.isfinite(total):
        finite = np.isfinite(arr)
        if finite.all():
            raise UserError(f"{name} values are too large: their sum overflows float64")
        bad = np.argwhere(~finite)[0]
        raise UserError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def as_dt(dt) -> float:
    """Validate a sampling interval in seconds."""
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise UserError(f"dt must be a number of seconds, got {dt!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise UserError(f"dt must be a positive, finite number of seconds, got {dt!r}")
    return value


def as_lengths(lengths, batch: int, horizon: int, min_len: int = 4) -> np.ndarray:
    """Validate per-trajectory valid lengths of a padded (B, T, D) batch."""
    arr = np.asarray(lengths)
    if arr.shape != (batch,):
        raise UserError(f"lengths must have shape ({batch},), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.equal(np.mod(arr, 1), 0)):
            raise UserError(f"lengths must be whole numbers, got {arr.tolist()}")
        arr = arr.astype(np.int64)
    if np.any(arr < min_len) or np.any(arr > horizon):
        raise UserError(
            f"lengths must each be between {min_len} and T={horizon}, got {arr.tolist()}"
        )
    return arr
