"""Dimensionless smoothness measures: log dimensionless jerk (LDLJ) and spectral arc length
(SPARC). Both are independent of movement amplitude and duration, so they compare motions
of different lengths; both are <= 0 and get more negative as the motion gets less smooth.

References: Hogan & Sternad (2009), "Sensitivity of smoothness measures to movement
duration, amplitude, and arrests"; Balasubramanian et al. (2015), "On the analysis of
movement smoothness", J. NeuroEng. Rehab. 12:112.
"""

from __future__ import annotations

import numpy as np

from smoothvla.metrics._checks import as_dt, as_path
from smoothvla.metrics.kinematics import jerk, speeds


def ldlj(positions, dt) -> float:
    """Log dimensionless jerk, velocity-peak variant:

        LDLJ = -ln( (D^3 / v_peak^2) * integral ||d^3 p / dt^3||^2 dt )

    with D = (T - 1) dt the duration and v_peak the largest speed. A minimum-jerk
    point-to-point movement gives D^3/v_peak^2 * 720 A^2/D^5 = 720 / 1.875^2 = 204.8,
    i.e. LDLJ = -ln 204.8 = -5.32, whatever its amplitude A and duration D.

    Args:
        positions: (T, D) samples, T >= 4. dt: sampling interval in seconds.
    """
    p = as_path(positions)
    if p.ndim != 2:
        raise ValueError(f"ldlj takes one (T, D) path, got shape {p.shape}")
    dt = as_dt(dt)
    v_peak = speeds(p, dt).max()
    if v_peak <= 0:
        raise ValueError("ldlj is undefined for a path that does not move (peak speed 0)")
    total = (p.shape[0] - 1) * dt
    integral = np.sum(np.linalg.norm(jerk(p, dt), axis=-1) ** 2) * dt
    return float(-np.log(total**3 / v_peak**2 * integral))


def sparc(
    positions,
    dt,
    *,
    pad_level: int = 4,
    cutoff_hz: float = 10.0,
    amplitude_threshold: float = 0.05,
) -> float:
    """Spectral arc length of the speed profile (Balasubramanian et al. 2015):

        SPARC = -integral_0^wc sqrt( (1/wc)^2 + (d|V(w)|/dw)^2 ) dw

    where |V| is the Fourier magnitude of the speed profile normalised by its value at 0 Hz
    and wc the highest frequency below `cutoff_hz` at which |V| still exceeds
    `amplitude_threshold` (the adaptive cut-off). Defaults are the paper's: zero padding to
    2^(ceil(log2 T) + 4) points, 10 Hz, 0.05. At a 20 Hz control rate the Nyquist frequency
    is 10 Hz, so the cut-off is the whole spectrum there.

    Args:
        positions: (T, D) samples, T >= 4. dt: sampling interval in seconds.
    Returns:
        SPARC (<= 0); about -1.4 to -1.6 for a single smooth bell-shaped speed profile.
    """
    p = as_path(positions)
    if p.ndim != 2:
        raise ValueError(f"sparc takes one (T, D) path, got shape {p.shape}")
    dt = as_dt(dt)
    if cutoff_hz <= 0 or not 0 < amplitude_threshold < 1 or pad_level < 0:
        raise ValueError(
            "sparc needs cutoff_hz > 0, 0 < amplitude_threshold < 1 and pad_level >= 0, got "
            f"{cutoff_hz}, {amplitude_threshold}, {pad_level}"
        )
    v = speeds(p, dt)
    if v.max() <= 0:
        raise ValueError("sparc is undefined for a path that does not move (peak speed 0)")
    n_fft = int(2 ** (np.ceil(np.log2(len(v))) + pad_level))
    freqs = np.fft.rfftfreq(n_fft, d=dt)
    mag = np.abs(np.fft.rfft(v, n_fft))
    mag = mag / mag.max()
    keep = freqs <= cutoff_hz
    freqs, mag = freqs[keep], mag[keep]
    above = np.nonzero(mag >= amplitude_threshold)[0]
    freqs, mag = freqs[above[0] : above[-1] + 1], mag[above[0] : above[-1] + 1]
    if len(freqs) < 2:
        return 0.0
    df = np.diff(freqs) / (freqs[-1] - freqs[0])
    return float(-np.sum(np.sqrt(df**2 + np.diff(mag) ** 2)))
