"""Trajectory-level rewards: plain functions `f(trajectory, ...) -> (reward, terms)`.

`terms` is a dict of named float terms that algorithms log every update (STYLE.md #6).

- binary_reward:  1[success]                                   (SmoothVLA R_binary)
- staged_reward:  1.0 on success, else 0.1 when the right object was grasped and still held
                  at the end of the episode                    (RL4VLA §5.1)
- smooth_reward:  1[success] * max(0, 1 - lam * mean_jerk / jerk_scale)   (SmoothVLA eq. 5)
- random_reward:  1[success] + zero-mean Gaussian noise        (SmoothVLA Table 3, R_random)

`jerk_scale` puts mean jerk in units where the expert demonstrations' mean jerk is 1
(`jerk_scale_from_trajectories`), so that lam = 0.2 means "an expert-smooth success is
worth 0.8, one twice as jerky 0.6". SmoothVLA uses raw m/s^3 with lam = 0.2, which only
works at its own control rate and robot; the scale makes lam portable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from smoothvla.errors import UserError, check_fields
from smoothvla.metrics import mean_jerk
from smoothvla.trajectory import Trajectory

log = logging.getLogger(__name__)

RewardTerms = dict[str, float]
RewardFn = Callable[[Trajectory], tuple[float, RewardTerms]]


def binary_reward(traj: Trajectory) -> tuple[float, RewardTerms]:
    """1 on success, 0 otherwise."""
    success = float(traj.success)
    return success, {"success": success}


def staged_reward(
    traj: Trajectory, grasp_bonus: float = 0.1, success_reward: float = 1.0
) -> tuple[float, RewardTerms]:
    """RL4VLA §5.1: `success_reward` for completing the task; otherwise `grasp_bonus` if
    the task's object was grasped and continuously held up to the end of the episode (a
    grasp that was dropped earns nothing). Needs `traj.is_grasping`."""
    if traj.is_grasping is None:
        raise ValueError("staged_reward needs per-step is_grasping in the trajectory")
    held = np.asarray(traj.is_grasping, dtype=bool)
    holding_at_end = bool(held.any() and held[-1])
    success = float(traj.success)
    reward = success_reward if traj.success else (grasp_bonus if holding_at_end else 0.0)
    return reward, {"success": success, "grasp_held": float(holding_at_end)}


def smooth_reward(
    traj: Trajectory, lam: float = 0.2, jerk_scale: float = 1.0
) -> tuple[float, RewardTerms]:
    """SmoothVLA eq. 5 with a jerk scale: 1[success] * (1 - lam * mean||jerk|| / jerk_scale),
    clipped at 0 (a clip is logged and reported as the `clipped` term).

    Jerk is taken from `traj.ee_pos` at the control rate (`traj.control_dt`). It is computed
    for failures too so that it can be logged, but only successes are paid.
    """
    if lam < 0 or not np.isfinite(lam):
        raise ValueError(f"lam must be a finite number >= 0, got {lam}")
    if jerk_scale <= 0 or not np.isfinite(jerk_scale):
        raise ValueError(f"jerk_scale must be a positive number, got {jerk_scale}")
    mj = mean_jerk(traj.ee_pos, traj.control_dt) if len(traj.ee_pos) >= 4 else 0.0
    normalized = mj / jerk_scale
    raw = float(traj.success) * (1.0 - lam * normalized)
    clipped = raw < 0
    if clipped:
        log.info(
            "smooth_reward clipped at 0: task %s init %d, mean jerk %.3g = %.2f x jerk_scale",
            traj.task_id, traj.init_id, mj, normalized,
        )
    reward = max(raw, 0.0)
    return reward, {
        "success": float(traj.success),
        "mean_jerk": float(mj),
        "jerk_normalized": float(normalized),
        "penalty": float(traj.success) * lam * normalized,
        "clipped": float(clipped),
    }


def random_reward(
    traj: Trajectory, rng: np.random.Generator, noise_std: float = 0.05
) -> tuple[float, RewardTerms]:
    """SmoothVLA Table 3's R_random: the binary reward plus zero-mean Gaussian noise. The
    default std is about the spread the smooth reward's jerk term has among successes, so
    the ablation asks whether structure, not merely variance, is what helps."""
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    noise = float(rng.normal(0.0, noise_std))
    success = float(traj.success)
    return success + noise, {"success": success, "noise": noise}


def jerk_scale_from_trajectories(positions: Iterable[np.ndarray], dt: float) -> float:
    """Mean over demonstrations of their mean jerk: the `jerk_scale` that makes expert
    smoothness 1. `positions` yields (T, 3) end-effector paths sampled every `dt`."""
    values = [mean_jerk(p, dt) for p in positions]
    if not values:
        raise ValueError("jerk_scale_from_trajectories needs at least one trajectory")
    scale = float(np.mean(values))
    if scale <= 0:
        raise ValueError("demonstrations have zero mean jerk; cannot use them as a scale")
    return scale


REWARDS = ("binary", "staged", "smooth", "random")


@dataclass
class RewardConfig:
    """Which reward to optimize, and its parameters."""

    name: str = "smooth"
    """One of binary, staged, smooth, random."""
    lam: float = 0.2
    """Smoothness weight lambda of the hybrid reward (SmoothVLA §4.1 picks 0.2)."""
    jerk_scale: float = 1.0
    """Mean jerk (m/s^3) that counts as 1: set it to the expert demonstrations' mean jerk."""
    jerk_scale_from_policy: bool = False
    """Replace jerk_scale by the mean jerk of the starting policy's first-iteration rollouts.
    For policies much jerkier than the experts, where the expert scale would clip every
    success to 0 and leave the smooth reward with no signal (docs/rl.md)."""
    grasp_bonus: float = 0.1
    """Staged reward for holding the right object at the end of a failed episode."""
    noise_std: float = 0.05
    """Std of the zero-mean noise of the random-reward ablation."""
    seed: int = 0
    """Seed of the random-reward noise."""

    def __post_init__(self) -> None:
        if self.name not in REWARDS:
            raise UserError(f"unknown reward {self.name!r}; choose one of {', '.join(REWARDS)}")
        # lam = 10 already pays nothing for a success at a tenth of the expert's jerk above it
        check_fields(self, lam="[0, 10]", jerk_scale="(0, inf)", grasp_bonus="[0, 1]",
                     noise_std=">= 0")


def make_reward(cfg: RewardConfig, rng: np.random.Generator | None = None) -> RewardFn:
    """A `traj -> (reward, terms)` callable for the configured reward. `rng` drives the
    random reward's noise (default: a generator seeded with `cfg.seed`); pass your own to
    checkpoint its state."""
    if cfg.name == "binary":
        return binary_reward
    if cfg.name == "staged":
        return lambda traj: staged_reward(traj, grasp_bonus=cfg.grasp_bonus)
    if cfg.name == "smooth":
        return lambda traj: smooth_reward(traj, lam=cfg.lam, jerk_scale=cfg.jerk_scale)
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    return lambda traj: random_reward(traj, rng, noise_std=cfg.noise_std)
