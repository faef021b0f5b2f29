"""Jerk-limited motion segments and their conversion to delta actions."""

import math

import numpy as np
import pytest

from smoothvla.experts.motion import (
    GripperRamp,
    MotionLimits,
    down_quat,
    plan_segment,
    pose_action,
    yaw_of,
)
from smoothvla.geometry import axis_angle_quat, matrix_to_quat, quat_to_axis_angle, quat_to_matrix

DT = 0.05


def _derivatives(rows: np.ndarray, start: np.ndarray):
    """Finite-difference speed/accel/jerk norms, with the robot at rest before and after."""
    p = np.vstack([np.repeat(start[None], 3, 0), rows, np.repeat(rows[-1:], 3, 0)])
    v = np.diff(p, axis=0) / DT
    a = np.diff(v, axis=0) / DT
    j = np.diff(a, axis=0) / DT
    return (np.linalg.norm(x, axis=1).max() for x in (v, a, j))


@pytest.mark.parametrize("goal", [(0.3, 0.1, -0.2), (0.0, 0.0, 0.01), (-0.05, 0.4, 0.0)])
def test_segment_respects_limits_and_reaches_goal(goal):
    limits = MotionLimits(max_vel=0.25, max_acc=1.0, max_jerk=5.0)
    start = np.array([0.1, -0.2, 0.3])
    goal = start + np.array(goal)
    rows = plan_segment(start, goal, DT, limits, yaw_start=0.2, yaw_goal=-0.4)
    np.testing.assert_allclose(rows[-1, :3], goal, atol=1e-12)
    assert rows[-1, 3] == pytest.approx(-0.4)
    v, a, j = _derivatives(rows[:, :3], start)
    assert v <= 0.25 * (1 + 1e-9)
    assert a <= 1.0 * (1 + 1e-9)
    assert j <= 5.0 * (1 + 1e-9)
    # straight line: every setpoint lies on the segment
    direction = (goal - start) / np.linalg.norm(goal - start)
    off_line = (rows[:, :3] - start) - np.outer((rows[:, :3] - start) @ direction, direction)
    assert np.abs(off_line).max() < 1e-12
    yaw_rate = np.abs(np.diff(np.concatenate([[0.2], rows[:, 3]]))) / DT
    assert yaw_rate.max() <= limits.max_yaw_vel * (1 + 1e-9)


def test_long_move_reaches_cruise_speed_and_takes_expected_time():
    # 1 m at v=0.25, a=1, j=5: t = d/v + v/a + a/j = 4 + 0.25 + 0.2 = 4.45 s -> 89 steps
    rows = plan_segment(np.zeros(3), np.array([1.0, 0, 0]), DT, MotionLimits())
    assert len(rows) == math.ceil(4.45 / DT - 1e-9)
    v, _, _ = _derivatives(rows[:, :3], np.zeros(3))
    assert v == pytest.approx(0.25, rel=1e-6)


def test_zero_move_is_empty_and_bad_input_raises():
    assert plan_segment(np.ones(3), np.ones(3), DT, MotionLimits()).shape == (0, 4)
    with pytest.raises(ValueError, match="dt"):
        plan_segment(np.zeros(3), np.ones(3), 0.0, MotionLimits())
    with pytest.raises(ValueError, match="non-finite"):
        plan_segment(np.zeros(3), np.array([np.nan, 0, 0]), DT, MotionLimits())
    with pytest.raises(ValueError, match="max_jerk"):
        MotionLimits(max_jerk=-1.0)


def test_yaw_turn_takes_the_short_way():
    rows = plan_segment(np.zeros(3), np.zeros(3), DT, MotionLimits(), 3.0, -3.0)
    # from 3.0 to -3.0 is +0.283 rad the short way, not -6 rad
    assert rows[-1, 3] == pytest.approx(3.0 + (2 * math.pi - 6.0))
    assert np.all(np.diff(rows[:, 3]) >= -1e-12)


def test_pose_action_hand_checked():
    down = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))
    # 1 cm along x -> 0.2; 10 cm along z -> clipped, direction kept
    a = pose_action(np.zeros(3), down, np.array([0.01, 0, 0]), down, 1.0)
    np.testing.assert_allclose(a, [0.2, 0, 0, 0, 0, 0, 1.0], atol=1e-12)
    a = pose_action(np.zeros(3), down, np.array([0.05, 0, 0.1]), down, -1.0)
    np.testing.assert_allclose(a[:3], [0.5, 0, 1.0], atol=1e-12)
    # 0.1 rad of yaw -> world z rotation 0.1 / 0.5 = 0.2
    a = pose_action(np.zeros(3), down, np.zeros(3), down_quat(0.1, down), 0.0)
    np.testing.assert_allclose(a[3:6], [0, 0, 0.2], atol=1e-12)
    assert yaw_of(down_quat(0.1, down), down) == pytest.approx(0.1)
    # a 90 degree roll error is clipped to 1
    roll = matrix_to_quat(quat_to_matrix(down) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]]))
    rot = pose_action(np.zeros(3), down, np.zeros(3), roll, 0.0)[3:6]
    assert np.abs(rot).max() == pytest.approx(1.0)


def test_axis_angle_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)
        assert np.linalg.norm(quat_to_axis_angle(q)) <= math.pi + 1e-9


def test_gripper_ramp():
    ramp = GripperRamp(steps=4, value=-1.0)
    ramp.target = 1.0
    assert [ramp.step() for _ in range(5)] == pytest.approx([-0.5, 0.0, 0.5, 1.0, 1.0])
    assert ramp.settled
    with pytest.raises(ValueError):
        GripperRamp(steps=0)


def test_pointing_down_reference():
    from smoothvla.experts.expert import pointing_down

    down = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(pointing_down(down), down, atol=1e-12)
    # tilt a yawed down-pose by 0.3 rad about its own x axis: the reference undoes the tilt
    yawed = quat_to_matrix(down_quat(0.4, down))
    tilt = quat_to_matrix(axis_angle_quat(0.3 * yawed[:, 0]))
    ref = quat_to_matrix(pointing_down(matrix_to_quat(tilt @ yawed)))
    np.testing.assert_allclose(ref, yawed, atol=1e-12)
    np.testing.assert_allclose(ref[:, 2], [0, 0, -1], atol=1e-12)
    assert yaw_of(matrix_to_quat(ref), down) == pytest.approx(0.4, abs=1e-9)
