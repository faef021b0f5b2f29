"""The `Trajectory` record: what one episode leaves behind for metrics, rewards and learning.

Shapes use T = number of control steps recorded (observations after each executed action,
plus the state at reset as row 0), so positions have T rows and actions have T - 1 rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch stays out of the import path of metrics and rewards
    from smoothvla.policies.base import ActionChunk


@dataclass
class Trajectory:
    """One episode at the control rate (DESIGN.md, "Trajectory").

    Attributes:
        ee_pos: (T, 3) end-effector position in metres, row 0 is the state at reset.
        actions: (T-1, A) commanded actions, action t moves state t to state t+1.
        control_dt: seconds between two control steps (0.05 at 20 Hz).
        success: whether the task's success predicate held at the end.
        joint_pos: (T, n) arm joint positions in radians, or None when not recorded.
        ee_quat: (T, 4) end-effector orientation (w, x, y, z), or None.
        gripper: (T,) gripper opening in metres, or None.
        is_grasping: (T,) bool, the task's target object is held at step t, or None.
        chunk_starts: (T-1,) bool, action t is the first action of a policy chunk, or None.
        log_probs: (C,) log-probability of each executed chunk under the sampling policy.
        task_id, init_id, seed, perturbation: where the episode came from.
        extras: free-form per-episode data (timings, instruction, ...).
        group_id: index of the group of rollouts (same task, init state and seed) this
            episode belongs to within one collection, or -1.
        chunk_obs: C observations, the one each chunk was sampled from, or None.
        chunks: the C sampled chunks as one `ActionChunk` (actions (C, k, A) including
            steps not executed after the episode ended, log_prob (C,), extras (C, ...)),
            what `Policy.log_prob(chunk_obs, chunks)` needs to recompute log-probs; or None.
        reward: the trajectory's scalar reward once a reward function has scored it.
        reward_terms: the named terms of that reward (success, jerk, penalty, ...).
    """

    ee_pos: np.ndarray
    actions: np.ndarray
    control_dt: float
    success: bool
    joint_pos: np.ndarray | None = None
    ee_quat: np.ndarray | None = None
    gripper: np.ndarray | None = None
    is_grasping: np.ndarray | None = None
    chunk_starts: np.ndarray | None = None
    log_probs: np.ndarray | None = None
    task_id: str = ""
    init_id: int = -1
    seed: int = -1
    perturbation: str = "none"
    extras: dict[str, Any] = field(default_factory=dict)
    group_id: int = -1
    chunk_obs: list[dict[str, Any]] | None = None
    chunks: ActionChunk | None = None
    reward: float | None = None
    reward_terms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ee_pos = np.asarray(self.ee_pos, dtype=np.float64)
        self.actions = np.asarray(self.actions, dtype=np.float64)
        if self.ee_pos.ndim != 2 or self.ee_pos.shape[1] != 3:
            raise ValueError(f"Trajectory.ee_pos must have shape (T, 3), got {self.ee_pos.shape}")
        if self.actions.ndim != 2:
            raise ValueError(f"Trajectory.actions must have shape (T-1, A), got {self.actions.shape}")
        if not np.isfinite(self.control_dt) or self.control_dt <= 0:
            raise ValueError(f"Trajectory.control_dt must be a positive number, got {self.control_dt}")
        for name in ("joint_pos", "ee_quat", "gripper", "is_grasping"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.ee_pos):
                raise ValueError(
                    f"Trajectory.{name} has {len(value)} rows but ee_pos has {len(self.ee_pos)}"
                )
        self.success = bool(self.success)
        if self.chunk_starts is not None:
            self.chunk_starts = np.asarray(self.chunk_starts, dtype=bool)
            if len(self.chunk_starts) != len(self.actions):
                raise ValueError(
                    f"Trajectory.chunk_starts has {len(self.chunk_starts)} rows "
                    f"but actions has {len(self.actions)}"
                )
        num_chunks = None if self.chunk_starts is None else int(self.chunk_starts.sum())
        for name, count in (
            ("log_probs", None if self.log_probs is None else len(self.log_probs)),
            ("chunk_obs", None if self.chunk_obs is None else len(self.chunk_obs)),
            ("chunks", None if self.chunks is None else len(self.chunks)),
        ):
            if count is not None and num_chunks is not None and count != num_chunks:
                raise ValueError(
                    f"Trajectory.{name} has {count} entries but chunk_starts marks "
                    f"{num_chunks} chunks"
                )

    @property
    def num_steps(self) -> int:
        """Number of executed control steps (T - 1)."""
        return len(self.ee_pos) - 1

    @property
    def duration(self) -> float:
        """Episode duration in seconds."""
        return self.num_steps * self.control_dt

    @property
    def num_chunks(self) -> int:
        """Number of executed policy chunks C (0 when chunk_starts was not recorded)."""
        return 0 if self.chunk_starts is None else int(self.chunk_starts.sum())

    @property
    def grasped(self) -> bool:
        """Whether the target object was held at any step (False when not recorded)."""
        return bool(self.is_grasping is not None and np.any(self.is_grasping))
