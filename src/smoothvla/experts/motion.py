"""Jerk-limited Cartesian motion for the scripted experts, and its conversion to env actions.

A motion segment moves the end effector on a straight line from `start` to `goal` while
turning its yaw from `yaw_start` to `yaw_goal`. The path parameter (distance along the
line) and the yaw are planned together by `ruckig` as two time-synchronized degrees of
freedom, each starting and ending at rest, so the Cartesian speed, acceleration and jerk
along the line are bounded by the scalar limits (a 1-D profile along a fixed direction
has exactly the norm of its derivatives). Sampling the continuous profile every
`control_dt` gives setpoints whose finite-difference velocity, acceleration and jerk are
averages of the continuous ones, so they respect the same limits.

Setpoints become the 7-D delta action of the env (`envs/base.py`): position delta divided
by `action_scale["pos"]` (0.05 m), rotation delta as a world-frame axis-angle divided by
`action_scale["rot"]` (0.5 rad), both clipped to [-1, 1], and the gripper command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ruckig import InputParameter, Result, Ruckig, Synchronization, Trajectory

from smoothvla.geometry import (quat_conj, quat_mul, quat_to_axis_angle, quat_to_matrix,
                                wrap_angle, yaw_quat)


@dataclass(frozen=True)
class MotionLimits:
    """Limits of one motion segment; defaults suit a Panda driven at 20 Hz.

    Attributes:
        max_vel: Cartesian speed limit along the line, m/s.
        max_acc: Cartesian acceleration limit, m/s^2.
        max_jerk: Cartesian jerk limit, m/s^3.
        max_yaw_vel: yaw rate limit, rad/s.
        max_yaw_acc: yaw acceleration limit, rad/s^2.
        max_yaw_jerk: yaw jerk limit, rad/s^3.
    """

    max_vel: float = 0.25
    max_acc: float = 1.0
    max_jerk: float = 5.0
    max_yaw_vel: float = 1.5
    max_yaw_acc: float = 6.0
    max_yaw_jerk: float = 30.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"MotionLimits.{name} must be a positive number, got {value}")

    def scaled(self, factor: float) -> MotionLimits:
        """The same limits with the Cartesian speed scaled by `factor` (slow, careful moves)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"speed factor must be a positive number, got {factor}")
        return MotionLimits(self.max_vel * factor, self.max_acc, self.max_jerk,
                            self.max_yaw_vel, self.max_yaw_acc, self.max_yaw_jerk)


def plan_segment(start: np.ndarray, goal: np.ndarray, dt: float, limits: MotionLimits,
                 yaw_start: float = 0.0, yaw_goal: float = 0.0) -> np.ndarray:
    """Setpoints of a rest-to-rest straight-line move with a synchronized yaw turn.

    Args:
        start, goal: (3,) positions in metres.
        dt: control period in seconds.
        limits: speed/acceleration/jerk limits.
        yaw_start, yaw_goal: yaw angles in radians; the turn takes the shorter way round.

    Returns:
        (N, 4) rows (x, y, z, yaw) at times dt, 2 dt, ..., N dt; the last row is the goal
        exactly. N = 0 when there is nothing to do.
    """
    start = np.asarray(start, dtype=np.float64).reshape(3)
    goal = np.asarray(goal, dtype=np.float64).reshape(3)
    if not (np.all(np.isfinite(start)) and np.all(np.isfinite(goal))):
        raise ValueError(f"plan_segment: non-finite start {start} or goal {goal}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"plan_segment: dt must be a positive number, got {dt}")
    delta = goal - start
    distance = float(np.linalg.norm(delta))
    turn = wrap_angle(yaw_goal - yaw_start)
    if distance < 1e-9 and abs(turn) < 1e-9:
        return np.zeros((0, 4))
    direction = delta / distance if distance >= 1e-9 else np.zeros(3)

    inp = InputParameter(2)
    inp.current_position = [0.0, 0.0]
    inp.current_velocity = [0.0, 0.0]
    inp.current_acceleration = [0.0, 0.0]
    inp.target_position = [distance, turn]
    inp.target_velocity = [0.0, 0.0]
    inp.target_acceleration = [0.0, 0.0]
    inp.max_velocity = [limits.max_vel, limits.max_yaw_vel]
    inp.max_acceleration = [limits.max_acc, limits.max_yaw_acc]
    inp.max_jerk = [limits.max_jerk, limits.max_yaw_jerk]
    inp.synchronization = Synchronization.Time
    trajectory = Trajectory(2)
    result = Ruckig(2).calculate(inp, trajectory)
    if result not in (Result.Working, Result.Finished):
        raise RuntimeError(f"ruckig could not plan {start} -> {goal} (result {result})")

    steps = max(1, math.ceil(trajectory.duration / dt - 1e-9))
    rows = np.empty((steps, 4))
    for k in range(steps):
        t = min((k + 1) * dt, trajectory.duration)
        (s, yaw), _, _ = trajectory.at_time(t)
        rows[k, :3] = start + s * direction
        rows[k, 3] = yaw_start + yaw
    rows[-1, :3] = goal
    rows[-1, 3] = yaw_start + turn
    return rows


# ----- orientations (w, x, y, z; the conversions are in `smoothvla.geometry`) -----

def down_quat(yaw: float, reference: np.ndarray) -> np.ndarray:
    """Orientation `reference` (the gripper pointing down at yaw 0) turned by `yaw` about z."""
    return quat_mul(yaw_quat(yaw), reference)


def yaw_of(quat: np.ndarray, reference: np.ndarray) -> float:
    """Yaw of `quat` relative to `reference`, from the z component of their relative rotation."""
    rel = quat_to_matrix(quat) @ quat_to_matrix(reference).T
    return math.atan2(rel[1, 0], rel[0, 0])


# ----- actions -----

def pose_action(ee_pos: np.ndarray, ee_quat: np.ndarray, target_pos: np.ndarray,
                target_quat: np.ndarray, gripper: float, pos_scale: float = 0.05,
                rot_scale: float = 0.5) -> np.ndarray:
    """The 7-D delta action that moves the end effector from its pose to a target pose.

    Position: (target - ee) / pos_scale. Rotation: world-frame axis-angle of
    target * ee^-1, divided by rot_scale. Both are clipped to [-1, 1], scaling the whole
    3-vector so the direction is kept; gripper is copied (-1 open, +1 close).
    """
    pos = (np.asarray(target_pos, dtype=np.float64) - np.asarray(ee_pos, dtype=np.float64))
    rot = quat_to_axis_angle(quat_mul(np.asarray(target_quat, dtype=np.float64),
                                      quat_conj(np.asarray(ee_quat, dtype=np.float64))))
    action = np.zeros(7)
    action[:3] = _clip_norm(pos / pos_scale)
    action[3:6] = _clip_norm(rot / rot_scale)
    action[6] = float(np.clip(gripper, -1.0, 1.0))
    return action


def _clip_norm(vec: np.ndarray) -> np.ndarray:
    """Scale `vec` down so that every component lies in [-1, 1]."""
    peak = float(np.max(np.abs(vec))) if vec.size else 0.0
    return vec / peak if peak > 1.0 else vec


class GripperRamp:
    """Gripper command that moves toward its target by at most `2 / steps` per control step.

    `steps` = 1 flips instantly; larger values ramp, which is gentler on the object and
    reads as a smoother command for envs with a continuous gripper.
    """

    def __init__(self, steps: int = 4, value: float = -1.0):
        if steps < 1:
            raise ValueError(f"gripper ramp steps must be >= 1, got {steps}")
        self.rate = 2.0 / steps
        self.value = float(value)
        self.target = float(value)

    def step(self) -> float:
        """Advance one control step; returns the command to send."""
        delta = float(np.clip(self.target - self.value, -self.rate, self.rate))
        self.value += delta
        return self.value

    @property
    def settled(self) -> bool:
        return abs(self.value - self.target) < 1e-9
