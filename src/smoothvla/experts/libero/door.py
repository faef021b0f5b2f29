"""Putting an object into a box with a front door (LIBERO-10's microwave).

The microwave's cavity (measured geoms, KITCHEN_SCENE6) is 20.7 cm wide, 16.9 cm deep
and 14.4 cm high, its floor 4.4 cm above the table, its opening facing the robot's side
of the door. A hand pointing down cannot set anything down inside: the hand reaches 3 to
12 cm above the grip site, and the ceiling is 4 cm over a mug standing on the floor. So
the object is grasped by a handle sticking out of it with the hand turned horizontal
(tilted 90 degrees about the horizontal axis across the approach), carried in through the
opening with only the fingers past the door plane, set on the floor, and let go; the hand
backs out and turns down again before the door is closed (`articulated._close_door`).

The carried object's handle ends 1 cm inside the door plane, so the door closes past it.
Only objects in `SIDE_HANDLES` can be carried so (the yellow-and-white mug, the one object
LIBERO puts into the microwave).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from smoothvla.envs.libero_plan import region_owner
from smoothvla.experts.expert import CLOSE, OPEN, Expert, ExpertError
from smoothvla.experts.libero.articulated import (
    _door_frame,
    _door_out,
    _entry,
    _finger_yaw,
    _tilt,
)
from smoothvla.geometry import quat_to_matrix, wrap_angle

Actions = Iterator[np.ndarray]
# {object kind: grip point's distance from the box centre along the body +x axis (the
# handle's direction), m}. The mug's handle plate (1.7 cm thick) spans 3.4 to 8.8 cm out
# of its 10.7 cm body; the fingers close across the plate.
SIDE_HANDLES = {"white_yellow_mug": 0.052}
FLOOR_ABOVE_REGION = 0.008  # the cavity floor's top over the heating region's bottom, m
CARRY_CLEARANCE = 0.015     # object bottom over the cavity floor while carried in, m
PLACE_GAP = 0.003           # and when let go
HANDLE_INSIDE = 0.01        # handle end inside the door plane, m
STANDOFF = 0.08             # fingertips this far out of the handle before reaching in, m
OUTSIDE = 0.16              # object fully outside the opening before going in, m
BACK_OUT = 0.12             # hand backs out this far after letting go, m


def door_owner(expert: Expert, target: str) -> str | None:
    """The door articulation whose region `target` is (`microwave_1_heating_region` ->
    `microwave_1`), if any."""
    doors = [n for n, a in expert.state.get("articulations", {}).items() if a["kind"] == "door"]
    return region_owner(target, doors)


def _opening(entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """((2,) centre of the door plane's span, (2,) unit vector into the box): the closed
    door runs from the hinge along the part's long axis turned to joint position 0."""
    theta, sign = _door_frame(entry)
    theta -= float(entry["qpos"]) * sign  # the panel's angle when closed
    along = np.array([math.cos(theta), math.sin(theta)])
    inward = -_door_out(theta, sign)
    anchor = np.asarray(entry["anchor"], dtype=np.float64)[:2]
    return anchor + along * float(entry["part_half"][0]), inward


def put_through_door(expert: Expert, object: str, target: str, door: str) -> Actions:
    """Grasp `object` by its side handle with a horizontal hand, carry it in through the
    front opening of `door`'s box (the door must be open), set it on the floor of
    `target` (the box's region) and back out, the hand pointing down again."""
    from smoothvla.experts.libero.skills import _held, object_kind

    cfg = expert.cfg
    kind = object_kind(object)
    if kind not in SIDE_HANDLES:
        raise ExpertError(f"no side-handle grasp for {object!r} to carry it into {door!r}")
    e = expert.state["objects"][object]
    rot = quat_to_matrix(e["quat"])
    handle = rot[:2, 0] / max(float(np.linalg.norm(rot[:2, 0])), 1e-9)
    pointing = -handle  # the hand points at the body, across the handle
    pos = np.asarray(e["pos"], dtype=np.float64)
    grip = np.array([*(pos[:2] + SIDE_HANDLES[kind] * handle), pos[2]])
    axis = np.array([pointing[1], -pointing[0], 0.0])  # pointing x z: tilts the fingers on
    yaw = _finger_yaw(expert, axis[:2])
    before = np.array([*(grip[:2] - STANDOFF * pointing), grip[2]])
    base = expert._reference.copy()
    expert.gripper.target = OPEN
    yield from expert.move([before[0], before[1], grip[2] + 0.15], yaw, phase="approach")
    yield from _tilt(expert, base, axis, math.pi / 2, phase="tilt")
    yield from expert.move(before, speed=cfg.careful_speed, phase="descend")
    yield from expert.move(grip, speed=cfg.careful_speed, phase="reach-in")
    yield from expert.grip(CLOSE, phase="close")
    if not _held(expert, object):
        raise ExpertError(f"the side grasp of {object!r} missed")
    # The fingers may rest on the handle's top: measure where the object hangs.
    e = expert.state["objects"][object]
    box = np.asarray(e["pos"], dtype=np.float64)
    hang = float(expert.ee_pos[2] - (box[2] - e["half_size"][2]))
    region = expert.state["objects"][target]
    floor = float(region["pos"][2] - region["half_size"][2]) + FLOOR_ABOVE_REGION
    carry_z = floor + CARRY_CLEARANCE + hang
    yield from expert.move([*expert.cmd_pos[:2], carry_z], speed=cfg.careful_speed,
                           phase="lift")
    centre, inward = _opening(_entry(expert, door))
    turn = wrap_angle(math.atan2(inward[1], inward[0]) - math.atan2(pointing[1], pointing[0]))
    c, s = math.cos(turn), math.sin(turn)
    offset = expert.ee_pos[:2] - box[:2]  # grip from the box centre, turned with the hand
    offset = np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1]])
    depth = float(np.asarray(e["half_size"])[0]) + HANDLE_INSIDE
    final = np.array([*(centre + depth * inward + offset), carry_z])
    yield from expert.move([*(final[:2] - OUTSIDE * inward), carry_z],
                           expert.target_yaw + turn, phase="transfer")
    yield from expert.move(final, speed=cfg.careful_speed, phase="insert")
    yield from expert.move(final - [0.0, 0.0, CARRY_CLEARANCE - PLACE_GAP],
                           speed=cfg.careful_speed, phase="place")
    yield from expert.grip(OPEN, phase="release")
    out = np.array([*(-BACK_OUT * inward), 0.0])
    yield from expert.move(expert.cmd_pos + out, speed=cfg.careful_speed, phase="back-out")
    yield from expert.move(expert.cmd_pos + [0.0, 0.0, 0.05], speed=cfg.careful_speed,
                           phase="retreat")
    axis = np.array([inward[1], -inward[0], 0.0])
    yield from _tilt(expert, base, axis, 0.0, phase="untilt")
