"""Pick-and-place on real LIBERO scenes: grasp choice in clutter, rim grasps for bowls.

LIBERO objects sit close together and the Panda hand is about 0.2 m wide along its finger
axis, and bowls, ramekins and plates are wider than the 0.08 m finger opening. So the grasp
is chosen among candidates, each a fingertip point and a yaw:

- objects that fit between the fingers: the centre and points along the long horizontal
  axis, closing across the narrow side (both sides when the object is nearly round);
- wider objects (bowls, ramekins, plates): a rim grasp, one finger inside and one outside
  the wall, at 8 directions around the rim, closing radially;

and the one whose hand footprint keeps the most clearance to everything taller than the
fingertips wins (clearance capped at 3 cm; then the centre, at 0.1 m of clearance per m
off-centre, or the rim side facing the robot).
Motion is the shared jerk-limited `Expert.move` (`experts/motion.py`); the skill is
registered as ``libero_pick_place`` in `experts.skills.SKILLS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from smoothvla.experts.expert import CLOSE, OPEN, Expert, ExpertError
from smoothvla.experts.motion import quat_to_matrix, wrap_angle
from smoothvla.experts.skills import SKILLS

Actions = Iterator[np.ndarray]
MAX_OPENING = 0.08       # Panda fingers fully open, m
FIT_MARGIN = 0.012       # an object fits between the fingers if narrower than opening - this
HAND_HALF_LENGTH = 0.105  # hand footprint along the finger axis, m
HAND_HALF_WIDTH = 0.035   # and across it
FINGER_HALF_WIDTH = 0.012
RIM_INSET = 0.012        # fingertip centre inside the rim's outer edge, m
CLEARANCE_CAP = 0.03
NEAR = 0.04              # vertical distance from contact covered at careful speed, m


def _top(e: dict[str, Any]) -> float:
    return float(e["pos"][2] + _vertical_extent(e))


def _bottom(e: dict[str, Any]) -> float:
    return float(e["pos"][2] - _vertical_extent(e))


def _vertical_extent(e: dict[str, Any]) -> float:
    rot = np.abs(quat_to_matrix(e["quat"]))
    return float(rot[2] @ np.asarray(e["half_size"], dtype=np.float64))


def _horizontal_axes(e: dict[str, Any]) -> list[tuple[np.ndarray, float]]:
    """The two body axes closest to horizontal: (unit xy direction, half size) each."""
    rot = quat_to_matrix(e["quat"])
    half = np.asarray(e["half_size"], dtype=np.float64)
    axes = sorted(range(3), key=lambda i: abs(rot[2, i]))[:2]
    out = []
    for i in axes:
        d = rot[:2, i]
        n = float(np.linalg.norm(d))
        out.append((d / n if n > 1e-9 else np.array([1.0, 0.0]), float(half[i])))
    return out


def _box_distance(points: np.ndarray, e: dict[str, Any]) -> float:
    """Smallest xy distance from `points` (n, 2) to an object's horizontal footprint."""
    centre = np.asarray(e["pos"][:2], dtype=np.float64)
    (d0, h0), (d1, h1) = _horizontal_axes(e)
    rel = points - centre
    local = np.stack([rel @ d0, rel @ d1], axis=1)
    gap = np.maximum(np.abs(local) - np.array([h0, h1]), 0.0)
    return float(np.min(np.linalg.norm(gap, axis=1)))


def _footprint(xy: np.ndarray, finger_dir: np.ndarray, half_len: float,
               half_wid: float) -> np.ndarray:
    """(27, 2) points covering a rectangle centred at xy, long side along finger_dir."""
    across = np.array([-finger_dir[1], finger_dir[0]])
    s = np.linspace(-half_len, half_len, 9)
    t = np.linspace(-half_wid, half_wid, 3)
    return xy + s[:, None, None] * finger_dir + t[None, :, None] * across


def _clearance(expert: Expert, name: str, xy: np.ndarray, finger_dir: np.ndarray,
               grasp_z: float, opening: float) -> float:
    """Free distance around the hand (above the fingertips + 4.5 cm) and the fingers."""
    hand = _footprint(xy, finger_dir, HAND_HALF_LENGTH, HAND_HALF_WIDTH).reshape(-1, 2)
    fingers = np.concatenate([
        _footprint(xy + sign * (opening / 2 + 0.005) * finger_dir, finger_dir, 0.006,
                   FINGER_HALF_WIDTH).reshape(-1, 2) for sign in (-1, 1)])
    best = 1.0
    for other, e in expert.state["objects"].items():
        if other == name or e.get("region"):
            continue
        top = _top(e)
        if top > grasp_z + 0.045:
            best = min(best, _box_distance(hand, e))
        if top > grasp_z + 0.003:
            best = min(best, _box_distance(fingers, e))
    return best


def _finger_yaw(expert: Expert, direction: np.ndarray) -> float:
    """Yaw that points the finger (closing) axis along `direction`, nearest the current."""
    finger0 = quat_to_matrix(expert._reference)[:, 1]
    base = math.atan2(direction[1], direction[0]) - math.atan2(finger0[1], finger0[0])
    return min((wrap_angle(base + k * math.pi) for k in (0, 1)),
               key=lambda y: abs(wrap_angle(y - expert.target_yaw)))


def choose_grasp(expert: Expert, name: str, depth: float) -> tuple[np.ndarray, float, float, bool]:
    """(fingertip point (3,), yaw, score, rim) of the best grasp of object `name`."""
    e = expert.state["objects"][name]
    centre = np.asarray(e["pos"][:2], dtype=np.float64)
    top, bottom = _top(e), _bottom(e)
    (d0, h0), (d1, h1) = sorted(_horizontal_axes(e), key=lambda a: a[1])  # d0: narrow
    toward_robot = -centre / max(np.linalg.norm(centre), 1e-9)
    candidates = []
    if 2 * h0 <= MAX_OPENING - FIT_MARGIN:
        z = max(min(top - depth, float(e["pos"][2])), bottom + 0.012)
        reach = max(0.0, h1 - 0.012)
        closing = [(d0, d1, reach)]
        if 2 * h1 <= MAX_OPENING - FIT_MARGIN:
            closing.append((d1, d0, max(0.0, h0 - 0.015)))
        for close_dir, long_dir, r in closing:
            for s in np.linspace(-r, r, 5) if r > 0 else [0.0]:
                xy = centre + s * long_dir
                c = _clearance(expert, name, xy, close_dir, z, MAX_OPENING)
                candidates.append((min(c, CLEARANCE_CAP) - 0.1 * abs(s), xy, z, close_dir, False))
    else:
        # Rim points in the object's own plane, so a tilted bowl is gripped at its real rim.
        rot = quat_to_matrix(e["quat"])
        half = np.asarray(e["half_size"], dtype=np.float64)
        i0, i1, i2 = sorted(range(3), key=lambda i: abs(rot[2, i]))
        up = rot[:, i2] * (1.0 if rot[2, i2] >= 0 else -1.0)
        radius = min(half[i0], half[i1])
        for k in range(8):
            a = k * math.pi / 4
            radial = math.cos(a) * rot[:, i0] + math.sin(a) * rot[:, i1]
            rim = np.asarray(e["pos"], dtype=np.float64) + (radius - RIM_INSET) * radial \
                + half[i2] * up
            d = radial[:2] / max(np.linalg.norm(radial[:2]), 1e-9)
            z = max(float(rim[2]) - depth, bottom + 0.012)
            c = _clearance(expert, name, rim[:2], d, z, MAX_OPENING)
            candidates.append((min(c, CLEARANCE_CAP) + 0.005 * float(d @ toward_robot),
                               rim[:2], z, d, True))
    score, xy, z, close_dir, rim = max(candidates, key=lambda c: c[0])
    return np.array([xy[0], xy[1], z]), _finger_yaw(expert, close_dir), score, rim


def _held(expert: Expert, name: str) -> bool:
    held = expert.state.get("held")
    if held is not None:
        return name in held
    return float(expert.state["gripper"]) > 0.004


def _transfer_height(expert: Expert, name: str, start: np.ndarray, goal: np.ndarray,
                     hang: float) -> float:
    """End-effector height that carries the held object over everything near the path."""
    n = max(2, int(np.linalg.norm(goal[:2] - start[:2]) / 0.01) + 1)
    path = np.linspace(start[:2], goal[:2], n)
    top = 0.0
    for other, e in expert.state["objects"].items():
        if other != name and not e.get("region") and _box_distance(path, e) < 0.08:
            top = max(top, _top(e))
    return top + hang + expert.cfg.clearance


def libero_pick_place(expert: Expert, object: str, target: str, mode: str = "on") -> Actions:
    """Grasp `object` (chosen grasp), carry it over obstacles, put it on / drop it into
    `target` (an object, or a region entry of the privileged state)."""
    if mode not in ("on", "in"):
        raise ExpertError(f"pick_place mode must be 'on' or 'in', got {mode!r}")
    cfg = expert.cfg
    objects = expert.state["objects"]
    for key in (object, target):
        if key not in objects:
            raise ExpertError(f"{key!r} not in the privileged state ({sorted(objects)})")
    for attempt in range(cfg.grasp_retries + 1):
        point, yaw, _, _ = choose_grasp(expert, object, cfg.grasp_depth)
        e = expert.state["objects"][object]
        hover = np.array([point[0], point[1], _top(e) + cfg.hover])
        expert.gripper.target = OPEN
        if attempt == 0 or expert.ee_pos[2] < hover[2] - 0.01:
            yield from expert.move([*expert.ee_pos[:2], max(expert.ee_pos[2], hover[2])],
                                   yaw, phase="lift-clear")
        yield from expert.move(hover, yaw, phase="approach")
        yield from expert.move(point, speed=cfg.careful_speed, phase="descend")
        yield from expert.grip(CLOSE, phase="close")
        if _held(expert, object):
            break
        yield from expert.grip(OPEN, phase="regrasp-open")
        yield from expert.move(expert.ee_pos + [0, 0, cfg.hover], speed=cfg.careful_speed,
                               phase="regrasp-lift")
    else:
        raise ExpertError(f"could not grasp {object!r} after {cfg.grasp_retries + 1} attempts")

    e = expert.state["objects"][object]
    hang = expert.ee_pos[2] - _bottom(e)
    offset = np.asarray(e["pos"][:2], dtype=np.float64) - expert.ee_pos[:2]
    dest = expert.state["objects"][target]
    xy = np.asarray(dest["pos"][:2], dtype=np.float64) - offset
    lift_z = max(_transfer_height(expert, object, expert.ee_pos, xy, hang),
                 expert.ee_pos[2] + cfg.clearance)
    # Careful only near contact: the first and last few centimetres of each vertical move.
    start_z = float(expert.ee_pos[2])
    if lift_z - start_z > 2 * NEAR:
        yield from expert.move([*expert.ee_pos[:2], start_z + NEAR], speed=cfg.careful_speed,
                               phase="lift")
    yield from expert.move([*expert.ee_pos[:2], lift_z], phase="lift")
    yield from expert.move([xy[0], xy[1], lift_z], phase="transfer")
    gap = cfg.place_margin if mode == "on" else cfg.drop_height
    place_z = _top(expert.state["objects"][target]) + gap + hang
    if place_z < lift_z - 2 * NEAR:
        yield from expert.move([xy[0], xy[1], place_z + NEAR], phase="lower")
    if place_z < lift_z:
        yield from expert.move([xy[0], xy[1], place_z], speed=cfg.careful_speed, phase="place")
    yield from expert.grip(OPEN, phase="release")
    yield from expert.move(expert.ee_pos + [0, 0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


SKILLS.setdefault("libero_pick_place", libero_pick_place)
