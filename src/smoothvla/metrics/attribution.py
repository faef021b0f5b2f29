"""Where the jerk of a path comes from: each jerk window attributed to the policy chunk
whose action caused it.

Alignment (smoothvla/trajectory.py): positions p_0..p_{T-1}, actions a_0..a_{T-2}, action t
moves p_t to p_{t+1}. The jerk window j_t = (p_{t+3} - 3 p_{t+2} + 3 p_{t+1} - p_t) / dt^3
depends on the actions a_t, a_{t+1}, a_{t+2}; the last of them is the one that made the
window differ from a constant-acceleration continuation, so window t belongs to the chunk
that holds action t + 2. A chunk therefore owns the windows that end inside it.

`jerk_sources` splits the windows by cause instead: near a gripper event, across a chunk
boundary, or inside one chunk (docs/metrics.md, "Where the jerk comes from").
"""

from __future__ import annotations

import math

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


JERK_CLASSES = ("boundary", "inside", "event")
EVENT_MARGIN = 2
"""Actions of slack around a gripper event within which a jerk window counts as an event."""
SPLIT_KEYS = tuple(
    f"jerk_{c}{suffix}" for c in JERK_CLASSES for suffix in ("", "_share", "_windows")
)
"""Keys of `jerk_sources` besides mean_jerk: per class c, `jerk_c` (mean jerk of its
windows, m/s^3), `jerk_c_share` (its part of the summed jerk), `jerk_c_windows` (its part
of the windows)."""


def gripper_events(gripper_actions=None, grasping=None) -> np.ndarray:
    """(E,) sorted action indices at which a gripper event happens.

    Args:
        gripper_actions: (T-1,) gripper command of each action (actions[:, 6]: > 0 closes,
            <= 0 opens, as LIBERO's -1/+1); an event at action s when the sign of
            a_s differs from that of a_{s-1} (a new open/close command takes effect at s).
        grasping: (T,) bool, the object is held at state t; a transition between states
            s and s+1 (contact, grasp, release) happened during action s, the event's index.
    Either may be None; with both None the result is empty.
    """
    events = []
    if gripper_actions is not None:
        g = np.asarray(gripper_actions, dtype=np.float64)
        if g.ndim != 1:
            raise ValueError(f"gripper_actions must have shape (T-1,), got {g.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError("gripper_actions contain NaN or inf")
        closed = g > 0
        events.append(np.flatnonzero(closed[1:] != closed[:-1]) + 1)
    if grasping is not None:
        h = np.asarray(grasping, dtype=bool)
        if h.ndim != 1:
            raise ValueError(f"grasping must have shape (T,), got {h.shape}")
        events.append(np.flatnonzero(h[1:] != h[:-1]))
    if not events:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(events)).astype(np.int64)


def jerk_trace(positions, dt, *, smooth_window: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Jerk norm of every window over time, for figures.

    Args:
        positions: (T, 3) end-effector path, T >= 4.
        dt: control interval in seconds.
    Returns:
        (steps (T-3,), norms (T-3,)): window t is placed at step t + 1.5, the midpoint of its
        positions p_t..p_{t+3} (state k at step k, action s spanning steps s..s+1), and
        ||j_t|| in m/s^3.
    """
    p = as_path(positions)
    if p.ndim != 2:
        raise ValueError(f"jerk_trace takes one (T, D) path, got shape {p.shape}")
    norms = _norm(jerk(p, dt, smooth_window=smooth_window))
    return np.arange(len(norms)) + 1.5, norms


def classify_windows(num_actions: int, chunk_starts, events,
                     margin: int = EVENT_MARGIN) -> np.ndarray:
    """(T-3,) class index into JERK_CLASSES of each jerk window of a path with
    `num_actions` = T - 1 actions (see `jerk_sources` for the rule)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    starts = _chunk_start_mask(num_actions, chunk_starts)
    if num_actions and not starts[0]:
        raise ValueError("chunk_starts[0] must be True: the first action starts a chunk")
    t = np.arange(max(num_actions - 2, 0))
    cls = np.where(starts[t + 1] | starts[t + 2], 0, 1)
    ev = np.asarray(events, dtype=np.int64)
    if len(ev):
        # distance from each event's action to the window's actions t..t+2
        gap = np.maximum(ev[None, :] - (t[:, None] + 2), t[:, None] - ev[None, :])
        cls = np.where((gap <= margin).any(axis=1), 2, cls)
    return cls


def jerk_sources(positions, dt, chunk_starts, *, gripper_actions=None, grasping=None,
                 margin: int = EVENT_MARGIN, smooth_window: int = 0) -> dict[str, float]:
    """Where a path's jerk comes from: chunk boundaries, inside chunks, or gripper events.

    Each jerk window t (positions p_t..p_{t+3}, so actions a_t, a_{t+1}, a_{t+2}; module
    docstring) gets one class, first match wins:
      1. `event`: a gripper event (`gripper_events`: an open/close command change or an
         is_grasping transition, at action index s) lies within `margin` actions of the
         window's actions, i.e. t - margin <= s <= t + 2 + margin;
      2. `boundary`: its actions span two chunks, chunk_starts[t+1] or chunk_starts[t+2];
      3. `inside`: all three actions belong to one chunk.
    Events come first because a grasp jolts the arm whatever the chunking.

    Args:
        positions: (T, 3) end-effector path, T >= 4.
        dt: control interval in seconds.
        chunk_starts: (T-1,) bool, True at the first action of each chunk; or an int chunk size.
        gripper_actions: (T-1,) gripper command per action (actions[:, 6]), or None.
        grasping: (T,) bool, object held at each state, or None.
        margin: actions of slack around an event (>= 0).
        smooth_window: optional Savitzky-Golay pre-smoothing (as `mean_jerk`), 0 = off.
    Returns:
        mean_jerk (mean of ||j_t|| over all windows) and, per class c, `jerk_c` = mean ||j_t||
        over its windows (NaN when it has none), `jerk_c_share` = its sum of ||j_t|| over the
        sum over all windows (NaN when the path has no jerk), `jerk_c_windows` = its
        fraction of the windows. With neither gripper_actions nor grasping the event class
        is not measured: its three values are NaN and no window is an event.
    """
    p = as_path(positions)
    if p.ndim != 2:
        raise ValueError(f"jerk_sources takes one (T, D) path, got shape {p.shape}")
    num_actions = len(p) - 1
    for name, value, n in (("gripper_actions", gripper_actions, num_actions),
                           ("grasping", grasping, len(p))):
        if value is not None and np.shape(value) != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {np.shape(value)}")
    steps, norms = jerk_trace(p, dt, smooth_window=smooth_window)
    measured_events = gripper_actions is not None or grasping is not None
    cls = classify_windows(num_actions, chunk_starts, gripper_events(gripper_actions, grasping),
                           margin)
    total = float(norms.sum())
    out = {"mean_jerk": float(norms.mean())}
    for i, c in enumerate(JERK_CLASSES):
        if c == "event" and not measured_events:
            out.update({f"jerk_{c}": math.nan, f"jerk_{c}_share": math.nan,
                        f"jerk_{c}_windows": math.nan})
            continue
        mine = norms[cls == i]
        out[f"jerk_{c}"] = float(mine.mean()) if len(mine) else math.nan
        out[f"jerk_{c}_share"] = float(mine.sum()) / total if total > 0 else math.nan
        out[f"jerk_{c}_windows"] = len(mine) / len(norms)
    return out
