"""End-effector jerk from a joint trajectory through the Jacobian chain (SmoothVLA eq. 2-4).

With x = f(q) and J = df/dq:
    x_dot   = J q_dot                                         (eq. 2)
    x_ddot  = J q_ddot + J_dot q_dot                          (eq. 3)
    x_dddot = J q_dddot + 2 J_dot q_ddot + J_ddot q_dot       (eq. 4)
where J_dot and J_ddot are time derivatives of J along the path (not Hessians).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from smoothvla.metrics._checks import as_dt, as_path


def _jacobians(q: np.ndarray, jacobian_fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    jacs = np.stack([np.asarray(jacobian_fn(qt), dtype=np.float64) for qt in q])
    if jacs.ndim != 3 or jacs.shape[2] != q.shape[1]:
        raise ValueError(
            f"jacobian_fn must return an (m, n={q.shape[1]}) array, got shape {jacs.shape[1:]}"
        )
    if not np.all(np.isfinite(jacs)):
        raise ValueError("jacobian_fn returned NaN or inf")
    return jacs


def _derivatives_order2(x: np.ndarray, dt: float):
    """Value and 1st-3rd derivatives at the midpoints t + 1.5 of four-sample windows; each
    (T-3, ...) and second-order accurate, aligned with `smoothvla.metrics.jerk`."""
    x0, x1, x2, x3 = x[:-3], x[1:-2], x[2:-1], x[3:]
    value = (-x0 + 9 * x1 + 9 * x2 - x3) / 16
    d1 = (x2 - x1) / dt
    d2 = ((x3 - x2) - (x1 - x0)) / (2 * dt**2)
    d3 = (x3 - 3 * x2 + 3 * x1 - x0) / dt**3
    return value, d1, d2, d3


def _derivatives_order4(x: np.ndarray, dt: float):
    """Value and 1st-3rd derivatives at samples 3..T-4 by fourth-order central stencils;
    each (T-6, ...)."""
    m3, m2, m1, c, p1, p2, p3 = (x[i : len(x) - 6 + i] for i in range(7))
    d1 = (m2 - 8 * m1 + 8 * p1 - p2) / (12 * dt)
    d2 = (-m2 + 16 * m1 - 30 * c + 16 * p1 - p2) / (12 * dt**2)
    d3 = (m3 - 8 * m2 + 13 * m1 - 13 * p1 + 8 * p2 - p3) / (8 * dt**3)
    return c, d1, d2, d3


def ee_jerk_from_joints(
    q,
    dt,
    jacobian_fn: Callable[[np.ndarray], np.ndarray],
    *,
    order: int = 2,
) -> np.ndarray:
    """End-effector jerk J q_dddot + 2 J_dot q_ddot + J_ddot q_dot from joint positions.

    Joint derivatives and the time derivatives of J along the path are taken by finite
    differences of the sampled q(t) and J(q(t)).

    Args:
        q: (T, n) joint positions (radians for revolute joints).
        dt: sampling interval in seconds.
        jacobian_fn: q (n,) -> (m, n) end-effector Jacobian (m = 3 for position).
        order: 2 -> (T-3, m) at the midpoints t + 1.5, the same times as
            `jerk(positions, dt)` (T >= 4); 4 -> (T-6, m) at samples 3..T-4, fourth-order
            accurate (T >= 7), for dense joint logs.
    """
    if order not in (2, 4):
        raise ValueError(f"order must be 2 or 4, got {order}")
    qs = as_path(q, name="q", min_len=4 if order == 2 else 7)
    if qs.ndim != 2:
        raise ValueError(f"q must have shape (T, n), got {qs.shape}")
    dt = as_dt(dt)
    jacs = _jacobians(qs, jacobian_fn)
    derivatives = _derivatives_order2 if order == 2 else _derivatives_order4
    _, q1, q2, q3 = derivatives(qs, dt)
    jac, jac1, jac2, _ = derivatives(jacs, dt)
    return (
        np.einsum("tmn,tn->tm", jac, q3)
        + 2 * np.einsum("tmn,tn->tm", jac1, q2)
        + np.einsum("tmn,tn->tm", jac2, q1)
    )
