"""`smoothvla demo`: the smoothness analysis on generated trajectories (smooth vs jittery).

Later issues grow this into the whole study (SFT -> GRPO -> evaluation -> report).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smoothvla.metrics import path_metrics
from smoothvla.metrics.synthetic import chunked, jittery, pick_place_path
from smoothvla.report.tables import format_table
from smoothvla.rewards import smooth_reward
from smoothvla.rollout.trajectory import Trajectory


@dataclass
class Config:
    control_hz: float = 20.0
    """Control rate of the generated trajectories."""
    seed: int = 0
    """Seed of the generated noise."""
    lam: float = 0.2
    """Smoothness weight of the hybrid reward (seed 000 eq. 5)."""

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")


def run(cfg: Config) -> int:
    dt = 1.0 / cfg.control_hz
    rng = np.random.default_rng(cfg.seed)
    smooth = pick_place_path(dt)
    paths = {
        "minimum-jerk expert": smooth,
        "chunked policy (k=8, 0.3 mm steps)": chunked(smooth, 8, 0.0003, rng),
        "jittery policy (0.05 mm noise)": jittery(smooth, 0.00005, rng),
        "jittery policy (0.1 mm noise)": jittery(smooth, 0.0001, rng),
        "jittery policy (1 mm noise)": jittery(smooth, 0.001, rng),
    }
    scale = path_metrics(smooth, dt)["mean_jerk"]
    rows = []
    for name, path in paths.items():
        m = path_metrics(path, dt)
        traj = Trajectory(ee_pos=path, actions=np.zeros((len(path) - 1, 7)), control_dt=dt, success=True)
        reward, _ = smooth_reward(traj, lam=cfg.lam, jerk_scale=scale)
        rows.append([name, m["mean_jerk"], m["mean_jerk"] / scale, m["ldlj"], m["sparc"],
                     m["path_length"], reward])
    print(f"Smoothness of one pick-and-place path ({len(smooth) - 1} steps at {cfg.control_hz:g} Hz),"
          " tracked five ways:\n")
    print(format_table(rows, ("trajectory", "mean jerk m/s^3", "x expert", "LDLJ", "SPARC",
                              "path m", f"smooth reward (lam={cfg.lam:g})")))
    print("\nAll five succeed; the hybrid reward 1[success](1 - lam * jerk / jerk_scale) pays the"
          " smooth one most.\nMetrics: docs/metrics.md. Measure your own files with"
          " `smoothvla jerk FILE.hdf5`.")
    return 0
