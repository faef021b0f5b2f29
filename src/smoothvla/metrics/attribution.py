"""Where the jerk of a path comes from: each jerk window attributed to the policy chunk
whose action caused it.

Alignment (rollout/trajectory.py): positions p_0..p_{T-1}, actions a_0..a_{T-2}, action t
moves p_t to p_{t+1}. The jerk window j_t = (p_{t+3} - 3 p_{t+2} + 3 p_{t+1} - p_t) / dt^3
depends on the actions a_t, a_{t+1}, a_{t+2}; the last of them is the one that made the
window differ from a constant-acceleration continuation, so window t belongs to the chunk
that holds action t + 2. A chunk therefore owns the windows that end inside it.
"""

from __future__ import annotations

import numpy as np

from smoothvla.metrics._checks import as_dt, as_path
from smoothvla.metrics.kinematics import _chunk_start_mask, _norm, jerk


def window_chunks(num_actions: int, chunk_starts) -> np.ndarray:
    """(T-3,) index of the chunk that owns each jerk window of a path with `num_actions`
    = T - 1 actions; `chunk_starts` is the (T-1,) bool mask or an int chunk size."""
    starts = _chunk_start_mask(num_actions, chunk_starts)
    if num_actions and not starts[0]:
        raise ValueError("chunk_starts[0] must be True: the first action starts a chunk")
    chunk_of_action = np.cumsum(starts) - 1
    return chunk_of_action[2:]


def chunk_jerk(positions, dt, chunk_starts) -> tuple[np.ndarray, np.ndarray]:
    """Jerk owned by each chunk.

    Args:
        positions: (T, 3) end-effector path, T >= 4.
        dt: control interval in seconds.
        chunk_starts: (T-1,) bool, True at the first action of each chunk; or an int chunk size.
    Returns:
        (jerk_sum (C,), windows (C,)): the sum of ||j_t|| over the windows each chunk owns,
        and how many windows that is (0 for a chunk that owns none, e.g. a first chunk of
        fewer than 3 actions). jerk_sum.sum() / windows.sum() is the path's mean jerk.
    """
    p = as_path(positions)
    if p.ndim != 2:
        raise ValueError(f"chunk_jerk takes one (T, D) path, got shape {p.shape}")
    dt = as_dt(dt)
    owner = window_chunks(len(p) - 1, chunk_starts)
    num_chunks = int(_chunk_start_mask(len(p) - 1, chunk_starts).sum())
    norms = _norm(jerk(p, dt))
    sums = np.bincount(owner, weights=norms, minlength=num_chunks)
    counts = np.bincount(owner, minlength=num_chunks)
    return sums.astype(np.float64), counts.astype(np.int64)
