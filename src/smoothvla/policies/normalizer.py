"""Action and proprioception statistics, owned and saved by the policy (STYLE.md #4).

Actions are mapped to [-1, 1] between their 1st and 99th percentiles per dimension (the
range OpenVLA bins, RL4VLA §3.2): every head works in this normalized space, and the token
head's 256 uniform bins over [-1, 1] are exactly OpenVLA's bins. Proprioception is
standardized (mean / std).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from smoothvla.errors import UserError


class MissingStatisticsError(UserError):
    """The policy has no normalizer statistics; it refuses to run rather than guess."""


# A dimension whose 1st-99th percentile range is narrower than this (a constant action,
# e.g. rotation never used) gets a unit half-range around its value instead of dividing by ~0.
_MIN_RANGE = 1e-4
_MIN_STD = 1e-3


def _vector(x, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"normalizer {name} must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"normalizer {name} contains NaN or inf")
    return arr


@dataclass
class Normalizer:
    """Per-dimension statistics. Vectors: action_* (action_dim,), proprio_* (proprio_dim,)."""

    action_low: np.ndarray
    action_high: np.ndarray
    proprio_mean: np.ndarray
    proprio_std: np.ndarray

    def __post_init__(self) -> None:
        a = len(np.atleast_1d(self.action_low))
        p = len(np.atleast_1d(self.proprio_mean))
        self.action_low = _vector(self.action_low, a, "action_low")
        self.action_high = _vector(self.action_high, a, "action_high")
        self.proprio_mean = _vector(self.proprio_mean, p, "proprio_mean")
        self.proprio_std = _vector(self.proprio_std, p, "proprio_std")
        if np.any(self.action_high <= self.action_low):
            raise ValueError("normalizer action_high must be > action_low in every dimension")
        if np.any(self.proprio_std <= 0):
            raise ValueError("normalizer proprio_std must be > 0")

    @classmethod
    def from_arrays(cls, actions: np.ndarray, proprio: np.ndarray) -> "Normalizer":
        """Statistics of a dataset: actions (N, A), proprio (N, P)."""
        actions = np.asarray(actions, dtype=np.float64)
        proprio = np.asarray(proprio, dtype=np.float64)
        if actions.ndim != 2 or proprio.ndim != 2 or len(actions) == 0 or len(proprio) == 0:
            raise ValueError(f"need actions (N, A) and proprio (N, P) with N > 0, got "
                             f"{actions.shape} and {proprio.shape}")
        low, high = np.percentile(actions, [1, 99], axis=0)
        narrow = (high - low) < _MIN_RANGE
        mid = (low + high) / 2
        low = np.where(narrow, mid - 1.0, low)
        high = np.where(narrow, mid + 1.0, high)
        std = np.maximum(proprio.std(axis=0), _MIN_STD)
        return cls(low, high, proprio.mean(axis=0), std)

    # -- transforms (torch, any leading shape) --------------------------------------------
    def _t(self, x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)

    def normalize_actions(self, a: torch.Tensor) -> torch.Tensor:
        """(..., A) env units -> (..., A), [q01, q99] -> [-1, 1]."""
        low, high = self._t(self.action_low, a), self._t(self.action_high, a)
        return 2 * (a - low) / (high - low) - 1

    def denormalize_actions(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize_actions` (no clipping)."""
        low, high = self._t(self.action_low, x), self._t(self.action_high, x)
        return (x + 1) / 2 * (high - low) + low

    def normalize_proprio(self, p: torch.Tensor) -> torch.Tensor:
        """(..., P) -> standardized (..., P)."""
        return (p - self._t(self.proprio_mean, p)) / self._t(self.proprio_std, p)

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in
                ("action_low", "action_high", "proprio_mean", "proprio_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        keys = ("action_low", "action_high", "proprio_mean", "proprio_std")
        missing = [k for k in keys if k not in d]
        if missing:
            raise MissingStatisticsError(f"normalizer statistics lack {missing}")
        return cls(*(d[k] for k in keys))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
