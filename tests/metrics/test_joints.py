"""The Jacobian-chain route (SmoothVLA eq. 2-4) against differentiating forward kinematics."""

import numpy as np
import pytest

from smoothvla.metrics import ee_jerk_from_joints, jerk

L1, L2 = 0.4, 0.3
W = np.array([1.3, 2.1])
A = np.array([0.6, 0.9])
PHASE = np.array([0.2, -0.4])


def fk(q):
    return np.stack([L1 * np.cos(q[..., 0]) + L2 * np.cos(q[..., 0] + q[..., 1]),
                     L1 * np.sin(q[..., 0]) + L2 * np.sin(q[..., 0] + q[..., 1])], -1)


def jacobian(q):
    s1, c1 = np.sin(q[0]), np.cos(q[0])
    s12, c12 = np.sin(q[0] + q[1]), np.cos(q[0] + q[1])
    return np.array([[-L1 * s1 - L2 * s12, -L2 * s12], [L1 * c1 + L2 * c12, L2 * c12]])


def q_of_t(t):
    return A * np.sin(W * t[:, None] + PHASE)


def analytic_ee_jerk(t):
    # Exact d^3/dt^3 of fk(q(t)) by the chain rule on the closed forms: with angles
    # u = q1 and v = q1 + q2 and link end L (cos u, sin u), d^3/dt^3 (cos u) =
    # sin(u) u'^3 - 3 cos(u) u' u'' - sin(u) u''' and d^3/dt^3 (sin u) =
    # -cos(u) u'^3 - 3 sin(u) u' u'' + cos(u) u'''.
    q = q_of_t(t)
    q1 = A * W * np.cos(W * t[:, None] + PHASE)
    q2 = -A * W**2 * np.sin(W * t[:, None] + PHASE)
    q3 = -A * W**3 * np.cos(W * t[:, None] + PHASE)
    out = np.zeros((len(t), 2))
    for length, u, u1, u2, u3 in [
        (L1, q[:, 0], q1[:, 0], q2[:, 0], q3[:, 0]),
        (L2, q.sum(1), q1.sum(1), q2.sum(1), q3.sum(1)),
    ]:
        out[:, 0] += length * (np.sin(u) * u1**3 - 3 * np.cos(u) * u1 * u2 - np.sin(u) * u3)
        out[:, 1] += length * (-np.cos(u) * u1**3 - 3 * np.sin(u) * u1 * u2 + np.cos(u) * u3)
    return out


def test_chain_route_matches_analytic_jerk_to_1e6_relative():
    dt = 0.005
    t = np.arange(0, 3.0, dt)
    got = ee_jerk_from_joints(q_of_t(t), dt, jacobian, order=4)
    want = analytic_ee_jerk(t[3:-3])
    assert got.shape == want.shape == (len(t) - 6, 2)
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < 1e-6, rel


def test_chain_route_agrees_with_jerk_of_forward_kinematics():
    # Both second-order routes estimate the jerk at the same midpoints t + 1.5 dt.
    dt = 0.002
    t = np.arange(0, 2.0, dt)
    q = q_of_t(t)
    chain = ee_jerk_from_joints(q, dt, jacobian)
    direct = jerk(fk(q), dt)
    exact = analytic_ee_jerk(t[:-3] + 1.5 * dt)
    assert chain.shape == direct.shape
    assert np.linalg.norm(chain - direct) / np.linalg.norm(direct) < 1e-4
    assert np.linalg.norm(chain - exact) / np.linalg.norm(exact) < 1e-4


def test_joint_route_bad_input():
    with pytest.raises(ValueError, match="order"):
        ee_jerk_from_joints(np.zeros((10, 2)), 0.1, jacobian, order=3)
    with pytest.raises(ValueError, match="NaN"):
        ee_jerk_from_joints(np.full((10, 2), np.nan), 0.1, jacobian)
    with pytest.raises(ValueError, match=r"\(m, n=2\)"):
        ee_jerk_from_joints(np.zeros((10, 2)), 0.1, lambda q: np.zeros(3))
    with pytest.raises(ValueError, match="at least 7"):
        ee_jerk_from_joints(np.zeros((6, 2)), 0.1, jacobian, order=4)
