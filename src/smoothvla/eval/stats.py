"""Means with 95% confidence intervals, and the relative drop under perturbation."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a success rate; well behaved at 0% and 100%."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95% interval of the mean; NaNs are ignored."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if len(x) == 1:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def relative_drop(ood: float, ind: float) -> float:
    """(OOD - IND) / IND, e.g. -0.25 for a success rate that falls from 0.8 to 0.6."""
    if ind == 0 or not math.isfinite(ind):
        return float("nan")
    return (ood - ind) / ind
