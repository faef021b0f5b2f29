"""Idle-action filter (RL4VLA App. A.2)."""

import numpy as np
import pytest

from smoothvla.experts.idle import filter_idle, idle_mask


def test_idle_mask_hand_checked():
    actions = np.array([
        [0.0, 0.0, 0.0, 0, 0, 0, -1.0],   # first action, at rest: idle
        [0.5, 0.0, 0.0, 0, 0, 0, -1.0],   # 25 mm: moving
        [0.01, 0.01, 0.0, 0, 0, 0, -1.0],  # 0.7 mm: idle
        [0.0, 0.0, 0.0, 0, 0, 0, 1.0],    # gripper flips: kept
        [0.0, 0.0, 0.0, 0, 0, 0.03, 1.0],  # 0.015 rad turn: kept
        [0.0, 0.0, 0.03, 0, 0, 0, 1.0],   # 1.5 mm: kept at 1 mm, idle at 10 mm
    ])
    np.testing.assert_array_equal(idle_mask(actions),
                                  [True, False, True, False, False, False])
    # RL4VLA's thresholds (0.01 m, 0.06 rad) also drop the 15 mrad turn and the 1.5 mm step
    np.testing.assert_array_equal(idle_mask(actions, pos_threshold=0.01, rot_threshold=0.06),
                                  [True, False, True, False, True, True])


def test_filter_keeps_pairs_aligned():
    actions = np.zeros((4, 7))
    actions[1, 0] = 1.0
    actions[3, 1] = 1.0
    obs = {"ee_pos": np.arange(12.0).reshape(4, 3)}
    kept_actions, kept_obs, keep = filter_idle(actions, obs)
    np.testing.assert_array_equal(keep, [False, True, False, True])
    np.testing.assert_array_equal(kept_obs["ee_pos"], obs["ee_pos"][[1, 3]])
    np.testing.assert_array_equal(kept_actions, actions[[1, 3]])
    # an all-idle demo keeps its first step rather than becoming empty
    _, _, keep = filter_idle(np.zeros((3, 7)), {"x": np.zeros(3)})
    np.testing.assert_array_equal(keep, [True, False, False])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(T, 7\)"):
        idle_mask(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="thresholds"):
        idle_mask(np.zeros((3, 7)), pos_threshold=-1)
