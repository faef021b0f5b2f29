"""Jerk and mean jerk against values worked out by hand."""

import numpy as np
import pytest

from smoothvla.metrics import jerk, mean_jerk, path_length, duration, idle_ratio, speeds


def test_cubic_has_constant_jerk_6a():
    # p(t) = a t^3 -> p''' = 6a exactly; the third difference is exact for cubics.
    a, dt = 0.7, 0.05
    t = np.arange(40) * dt
    p = np.stack([a * t**3, -2 * a * t**3, np.zeros_like(t)], axis=1)
    j = jerk(p, dt)
    assert j.shape == (37, 3)
    np.testing.assert_allclose(j[:, 0], 6 * a, rtol=1e-9)
    np.testing.assert_allclose(j[:, 1], -12 * a, rtol=1e-9)
    assert mean_jerk(p, dt) == pytest.approx(6 * a * np.sqrt(5), rel=1e-9)


def test_third_difference_by_hand():
    p = np.array([[0.0], [1.0], [8.0], [27.0], [64.0]])  # t^3 at t = 0..4, dt = 1
    np.testing.assert_allclose(jerk(p, 1.0), [[6.0], [6.0]])
    np.testing.assert_allclose(jerk(p, 0.5), [[48.0], [48.0]])  # / 0.5^3


def test_sinusoid_mean_abs_jerk_is_2_A_w3_over_pi():
    # p = A sin(w t): |p'''| = A w^3 |cos(w t)|, whose mean over whole periods is 2 A w^3 / pi.
    A, w = 0.1, 2 * np.pi * 0.5
    dt = 1e-3
    t = np.arange(0, 4.0 + 3 * dt, dt)  # two full periods (plus the 3 samples the stencil eats)
    p = (A * np.sin(w * t))[:, None]
    assert mean_jerk(p, dt) == pytest.approx(2 * A * w**3 / np.pi, rel=1e-3)


def test_batched_with_lengths_matches_per_trajectory():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 3))
    b = rng.normal(size=(7, 3))
    batch = np.zeros((2, 10, 3))
    batch[0] = a
    batch[1, :7] = b
    batch[1, 7:] = 1e3  # padding must be ignored
    out = mean_jerk(batch, 0.1, lengths=[10, 7])
    assert out.shape == (2,)
    assert out[0] == pytest.approx(mean_jerk(a, 0.1))
    assert out[1] == pytest.approx(mean_jerk(b, 0.1))
    assert jerk(batch, 0.1).shape == (2, 7, 3)
    np.testing.assert_allclose(mean_jerk(batch[:1], 0.1), [mean_jerk(a, 0.1)])


def test_path_length_duration_idle():
    p = np.array([[0, 0, 0], [3, 4, 0], [3, 4, 0], [3, 4, 12.0]])
    assert path_length(p) == pytest.approx(17.0)
    assert duration(p, 0.5) == pytest.approx(1.5)
    np.testing.assert_allclose(speeds(p, 0.5), [10, 0, 24])
    assert idle_ratio(p, 0.5) == pytest.approx(1 / 3)


def test_savgol_presmoothing_keeps_cubic_and_lowers_noise_jerk():
    dt = 0.05
    t = np.arange(60) * dt
    cubic = np.stack([t**3, t, 0 * t], 1)
    np.testing.assert_allclose(jerk(cubic, dt, smooth_window=9)[:, 0], 6.0, rtol=1e-6)
    noisy = cubic + np.random.default_rng(1).normal(0, 1e-3, cubic.shape)
    assert mean_jerk(noisy, dt, smooth_window=9) < 0.2 * mean_jerk(noisy, dt)


@pytest.mark.parametrize(
    "positions, dt, match",
    [
        (np.full((10, 3), np.nan), 0.05, "NaN or inf"),
        (np.array([[0, 0, np.inf]] * 10), 0.05, "NaN or inf"),
        (np.zeros((3, 3)), 0.05, "at least 4"),
        (np.full((10, 3), 1e308), 0.05, "too large"),
        (np.zeros(10), 0.05, "shape"),
        (np.zeros((2, 2, 10, 3)), 0.05, "shape"),
        (np.zeros((10, 3)), 0.0, "dt must be a positive"),
        (np.zeros((10, 3)), -1, "dt must be a positive"),
        (np.zeros((10, 3)), float("nan"), "dt must be a positive"),
        (np.zeros((10, 3)), "fast", "dt must be a number"),
    ],
)
def test_bad_input_is_a_clear_value_error(positions, dt, match):
    with pytest.raises(ValueError, match=match):
        mean_jerk(positions, dt)


def test_bad_lengths():
    with pytest.raises(ValueError, match="between 4 and T"):
        mean_jerk(np.zeros((2, 10, 3)), 0.1, lengths=[10, 3])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        mean_jerk(np.zeros((2, 10, 3)), 0.1, lengths=[10])
    with pytest.raises(ValueError, match="batched"):
        mean_jerk(np.zeros((10, 3)), 0.1, lengths=[10])
