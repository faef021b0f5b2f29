"""A point-mass stand-in for a `TaskEnv`, for tests and benchmarks of collectors and algorithms.

The "end effector" is a point in 3-D that moves by `gain * action[:3]` per control step and
must come within `tolerance` of a goal. The goal depends on `init_id` only, so a group of
rollouts that shares an init id shares its initial state. NumPy only: worker processes that
host it never import torch.

Fault injection for pool tests: `die_on_init_id` makes the process kill itself (SIGKILL)
at step `fault_step` of an episode started with that init id; `hang_on_init_id` makes it
sleep forever there; `raise_on_init_id` raises a RuntimeError there.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from smoothvla.envs.base import TaskSpec, check_action
from smoothvla.types import Observation

NUM_JOINTS = 7


def point_mass_spec(task_id: str = "fake-reach/point-mass-v1", max_steps: int = 16) -> TaskSpec:
    """The TaskSpec of the point-mass task."""
    return TaskSpec(
        task_id=task_id,
        suite=task_id.partition("/")[0],
        name=task_id.partition("/")[2] or task_id,
        instruction="move the point to the goal",
        max_steps=max_steps,
        num_init_states=8,
    )


class PointMassEnv:
    """Reach a goal with a 3-D point mass; `info` has the same keys as the tabletop suite."""

    def __init__(
        self,
        task_id: str = "fake-reach/point-mass-v1",
        *,
        max_steps: int = 16,
        gain: float = 0.05,
        tolerance: float = 0.08,
        goal_distance: float = 0.3,
        image_size: int = 8,
        step_sleep_s: float = 0.0,
        die_on_init_id: int | None = None,
        hang_on_init_id: int | None = None,
        raise_on_init_id: int | None = None,
        fault_step: int = 3,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.task = point_mass_spec(task_id, max_steps)
        self.control_dt = 0.05
        self.max_steps = max_steps
        self.gain = gain
        self.tolerance = tolerance
        self.goal_distance = goal_distance
        self.image_size = image_size
        self.step_sleep_s = step_sleep_s
        self.die_on_init_id = die_on_init_id
        self.hang_on_init_id = hang_on_init_id
        self.raise_on_init_id = raise_on_init_id
        self.fault_step = fault_step
        self._pos = np.zeros(3)
        self._goal = np.zeros(3)
        self._init_id = 0
        self._t = 0
        self._noise = np.random.default_rng(0)

    def goal_of(self, init_id: int) -> np.ndarray:
        """Goal position of an init id: on a circle of radius `goal_distance` in the xy-plane."""
        angle = 2 * np.pi * (init_id % self.task.num_init_states) / self.task.num_init_states
        return self.goal_distance * np.array([np.cos(angle), np.sin(angle), 0.0])

    def reset(self, seed: int | None = None, init_id: int = 0) -> tuple[Observation, dict]:
        self._noise = np.random.default_rng(seed)
        self._init_id = init_id
        self._goal = self.goal_of(init_id)
        self._pos = np.zeros(3)
        self._t = 0
        return self._obs(), self._info(False)

    def step(self, action: np.ndarray, render: bool = True
             ) -> tuple[Observation, float, bool, bool, dict]:
        action = np.clip(check_action(action), -1.0, 1.0)
        self._t += 1
        self._maybe_fault()
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        # a little seeded process noise, so that the env's seed matters as for a real sim
        self._pos = self._pos + self.gain * action[:3] + 1e-4 * self._noise.standard_normal(3)
        success = bool(np.linalg.norm(self._pos - self._goal) < self.tolerance)
        truncated = self._t >= self.max_steps and not success
        return self._obs(render), float(success), success, truncated, self._info(success)

    def close(self) -> None:
        pass

    def _maybe_fault(self) -> None:
        if self._t != self.fault_step:
            return
        if self._init_id == self.die_on_init_id:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._init_id == self.hang_on_init_id:
            time.sleep(3600)
        if self._init_id == self.raise_on_init_id:
            raise RuntimeError(f"injected fault at step {self._t}")

    def _obs(self, render: bool = True) -> Observation:
        proprio = np.zeros(8, dtype=np.float32)
        proprio[:3] = self._pos
        image = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        return {
            "rgb": {"agentview": image} if render else {},
            "proprio": proprio,
            "instruction": self.task.instruction,
            # privileged state, so that a tiny MLP policy can solve the task
            "state": np.concatenate([self._pos, self._goal - self._pos]).astype(np.float32),
        }

    def _info(self, success: bool) -> dict:
        return {
            "ee_pos": self._pos.copy(),
            "ee_quat": np.array([1.0, 0.0, 0.0, 0.0]),
            "joint_pos": np.concatenate([self._pos, self._pos, [0.0]])[:NUM_JOINTS],
            "gripper": 0.04,
            "is_grasping": bool(np.linalg.norm(self._pos - self._goal) < 2 * self.tolerance),
            "success": success,
            "control_dt": self.control_dt,
        }


def make_point_mass(task_id: str, **options) -> PointMassEnv:
    """Env factory with the signature of `smoothvla.envs.make` (picklable for spawn workers)."""
    return PointMassEnv(task_id, **options)
