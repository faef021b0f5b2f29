"""LDLJ and SPARC against their known values."""

import numpy as np
import pytest

from smoothvla.metrics import ldlj, sparc
from smoothvla.metrics.synthetic import minimum_jerk


def test_ldlj_of_minimum_jerk_is_minus_ln_204_8():
    # D^3 / v_peak^2 * 720 A^2 / D^5 with v_peak = 1.875 A / D  ->  720 / 1.875^2 = 204.8
    for amplitude, dur in [(0.3, 1.0), (2.0, 3.0)]:
        p = minimum_jerk([0, 0, 0], [amplitude, 0, 0], dur, 1e-3)
        assert ldlj(p, 1e-3) == pytest.approx(-np.log(204.8), abs=0.02)


def test_ldlj_worse_with_oscillation():
    dt = 0.01
    p = minimum_jerk([0, 0, 0], [0.3, 0, 0], 1.0, dt)
    t = np.arange(len(p)) * dt
    wobbly = p + np.stack([0 * t, 0.002 * np.sin(2 * np.pi * 4 * t), 0 * t], 1)
    assert ldlj(wobbly, dt) < ldlj(p, dt) - 1.0


def _gaussian_speed_path(sigma, dt, amp=0.0, freq=0.0):
    t = np.arange(0, 8 * sigma * 2, dt)
    v = np.exp(-((t - t[-1] / 2) ** 2) / (2 * sigma**2))
    v = v * (1 + amp * np.sin(2 * np.pi * freq * t))
    x = np.concatenate([[0.0], np.cumsum(v) * dt])
    return np.stack([x, 0 * x, 0 * x], 1)


def test_sparc_of_gaussian_speed_profile_matches_its_analytic_value():
    # |V(f)| / |V(0)| = exp(-2 pi^2 s^2 f^2); the adaptive cut-off is where it falls to 0.05,
    # f* = sqrt(ln 20 / (2 pi^2 s^2)); SPARC = -arc length of (f / f*, |V|) over [0, f*].
    s, dt = 0.25, 0.01
    f_star = np.sqrt(np.log(20) / (2 * np.pi**2 * s**2))
    f = np.linspace(0, f_star, 200_001)
    mag = np.exp(-2 * np.pi**2 * s**2 * f**2)
    expected = -np.sum(np.hypot(np.diff(f / f_star), np.diff(mag)))
    assert expected == pytest.approx(-1.4165, abs=1e-3)
    assert sparc(_gaussian_speed_path(s, dt), dt) == pytest.approx(expected, abs=0.01)


def test_sparc_of_minimum_jerk_is_a_single_smooth_bell():
    p = minimum_jerk([0, 0, 0], [0.3, 0.1, 0], 1.0, 0.01)
    assert -1.6 < sparc(p, 0.01) < -1.35


def test_sparc_more_negative_as_oscillation_grows():
    s, dt = 0.25, 0.01
    values = [sparc(_gaussian_speed_path(s, dt, amp, 4.0), dt) for amp in (0.0, 0.1, 0.3, 0.6)]
    assert all(b < a for a, b in zip(values, values[1:])), values


def test_spectral_bad_input():
    with pytest.raises(ValueError, match="does not move"):
        sparc(np.zeros((20, 3)), 0.05)
    with pytest.raises(ValueError, match="does not move"):
        ldlj(np.zeros((20, 3)), 0.05)
    with pytest.raises(ValueError, match="cutoff_hz"):
        sparc(np.random.rand(20, 3), 0.05, cutoff_hz=0)
    with pytest.raises(ValueError, match="one \\(T, D\\) path"):
        sparc(np.random.rand(2, 20, 3), 0.05)
