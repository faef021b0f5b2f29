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
Objects with a handle and a body wider than the opening (the moka pot) are grasped by the
handle (`HANDLE_GRASPS`). Objects sharing a region get slots (`place_spot`); into a drawer
an object is set down on the drawer's floor, in front of the cabinet's other handles;
into the microwave it is carried through the front opening (`door.py`).
The approach goes across at a safe height when the straight line down would cut
something, and an object that slips out on the first few centimetres of lift is grasped
afresh. Motion is the shared jerk-limited `Expert.move` (`experts/motion.py`); the skill
is registered as ``libero_pick_place`` in `experts.skills.SKILLS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from smoothvla.experts.expert import CLOSE, OPEN, Expert, ExpertError
from smoothvla.experts.libero.articulated import clear_of_drawer_fronts
from smoothvla.geometry import quat_to_matrix, wrap_angle
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
# Objects wider than the fingers' opening that carry a handle: grasp the handle.
# {object kind: (grasp point from the box centre in the body frame (m), closing body axis)}.
# The moka pot's body is 8 cm across; its handle bar is 1.4 cm thick (measured geoms).
HANDLE_GRASPS = {"moka_pot": (np.array([0.0, 0.0565, 0.026]), 0)}
DRAWER_FLOOR = 0.011     # a drawer's floor top above its lowest geom (LIBERO cabinets), m


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


def object_kind(name: str) -> str:
    """LIBERO object name without its instance number: "moka_pot_2" -> "moka_pot"."""
    return re.sub(r"_\d+$", "", name)


def choose_grasp(expert: Expert, name: str, depth: float) -> tuple[np.ndarray, float, float, bool]:
    """(fingertip point (3,), yaw, score, rim) of the best grasp of object `name`."""
    e = expert.state["objects"][name]
    if object_kind(name) in HANDLE_GRASPS:
        offset, axis = HANDLE_GRASPS[object_kind(name)]
        rot = quat_to_matrix(e["quat"])
        point = np.asarray(e["pos"], dtype=np.float64) + rot @ offset
        d = rot[:2, axis] / max(float(np.linalg.norm(rot[:2, axis])), 1e-9)
        return point, _finger_yaw(expert, d), CLEARANCE_CAP, False
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


def _approach_height(expert: Expert, name: str, start: np.ndarray,
                     hover: np.ndarray) -> float | None:
    """None when the straight line from `start` down to `hover` keeps the fingertips above
    every object the hand passes over (within its half width); else the height to go
    across at (LIBERO-10: after dropping the cream cheese into the basket, the line down
    to the butter's hover point cut the basket's rim and dragged the basket away)."""
    n = max(2, int(np.linalg.norm(hover - start) / 0.01) + 1)
    path = np.linspace(start, hover, n)
    for other, e in expert.state["objects"].items():
        if other == name or e.get("region"):
            continue
        near = [p for p in path if _box_distance(p[None, :2], e) < HAND_HALF_WIDTH]
        if near and min(p[2] for p in near) < _top(e) + 0.01:
            return max(_transfer_height(expert, name, start, hover, 0.0), float(start[2]))
    return None


def _drawer_floor(expert: Expert, target: str) -> float | None:
    """Height of the floor of the drawer whose region `target` is (None for anything else):
    things are set down on it, not dropped from the top of the region's box."""
    art = expert.state.get("articulations", {}).get(target)
    if art is None or art["kind"] != "drawer":
        return None
    extent = np.abs(quat_to_matrix(art["part_quat"])) @ np.asarray(art["part_half"], float)
    return float(art["part_pos"][2] - extent[2]) + DRAWER_FLOOR


def place_spot(expert: Expert, name: str, target: str,
               slot: tuple[int, int] | None) -> np.ndarray:
    """(2,) where the box centre of `name` goes on `target`: the target's centre, or for
    slot (i, n) of a region shared by n objects (two moka pots on the stove): the first
    one at 60% of the region's half extent along the world axis nearest to its own narrow
    axis, on the side nearest to it, the others at the
    point of a 7 x 7 grid over the region whose footprint keeps the most clearance (up to
    2 cm) from the movable objects already there, the nearer the centre the better."""
    objects = expert.state["objects"]
    dest, e = objects[target], objects[name]
    centre = np.asarray(dest["pos"][:2], dtype=np.float64)
    if not slot or slot[1] < 2 or not dest.get("region"):
        return centre
    extent = (np.abs(quat_to_matrix(dest["quat"])) @ np.asarray(dest["half_size"], float))[:2]
    here = np.asarray(e["pos"][:2], dtype=np.float64)
    (d0, h0), (d1, h1) = _horizontal_axes(e)
    if slot[0] == 0:  # to one side, along the object's narrow axis: room for the next
        narrow = d0 if h0 <= h1 else d1
        a = int(np.argmax(np.abs(narrow)))
        sides = [centre + sign * 0.6 * extent[a] * np.eye(2)[a] for sign in (-1, 1)]
        return min(sides, key=lambda p: float(np.linalg.norm(p - here)))
    others = [o for n, o in objects.items() if n != name and o.get("graspable")
              and np.all(np.abs(np.asarray(o["pos"][:2]) - centre) < extent + 0.1)]
    best, best_score = centre, -math.inf
    for u in np.linspace(-0.7, 0.7, 7):
        for v in np.linspace(-0.7, 0.7, 7):
            p = centre + np.array([u, v]) * extent
            points = _footprint(p, d0, h0, h1).reshape(-1, 2)
            gap = min((_box_distance(points, o) for o in others), default=1.0)
            score = min(gap, 0.02) - 0.05 * float(np.linalg.norm(p - centre))
            if score > best_score:
                best, best_score = p, score
    return best


def libero_pick_place(expert: Expert, object: str, target: str, mode: str = "on",
                      slot: tuple[int, int] | None = None, regrasps: int = 2) -> Actions:
    """Grasp `object` (chosen grasp), carry it over obstacles, put it on / drop it into
    `target` (an object, or a region entry of the privileged state; `slot` see
    `place_spot`). An object that does not rise with the hand is grasped afresh, at most
    `regrasps` times."""
    if mode not in ("on", "in"):
        raise ExpertError(f"pick_place mode must be 'on' or 'in', got {mode!r}")
    cfg = expert.cfg
    objects = expert.state["objects"]
    for key in (object, target):
        if key not in objects:
            raise ExpertError(f"{key!r} not in the privileged state ({sorted(objects)})")
    from smoothvla.experts.libero.door import door_owner, put_through_door

    door = door_owner(expert, target) if mode == "in" else None
    if door is not None:  # into the microwave: through its front opening (`door.py`)
        yield from put_through_door(expert, object, target, door)
        return
    for attempt in range(cfg.grasp_retries + 1):
        point, yaw, _, _ = choose_grasp(expert, object, cfg.grasp_depth)
        e = expert.state["objects"][object]
        hover = np.array([point[0], point[1], _top(e) + cfg.hover])
        expert.gripper.target = OPEN
        if attempt == 0 or expert.ee_pos[2] < hover[2] - 0.01:
            yield from expert.move([*expert.ee_pos[:2], max(expert.ee_pos[2], hover[2])],
                                   yaw, phase="lift-clear")
        over = _approach_height(expert, object, expert.ee_pos, hover)
        if over is not None:  # the straight line down to the hover cuts a neighbour
            yield from expert.move([hover[0], hover[1], over], yaw, phase="approach")
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
    xy = place_spot(expert, object, target, slot) - offset
    art = expert.state.get("articulations", {}).get(target)
    if art is not None and art["kind"] == "drawer":
        xy = clear_of_drawer_fronts(art, xy, HAND_HALF_WIDTH, held_offset=offset,
                                    held_half=float(np.max(np.asarray(e["half_size"])[:2])))
    lift_z = max(_transfer_height(expert, object, expert.ee_pos, xy, hang),
                 expert.ee_pos[2] + cfg.clearance)
    # Careful only near contact: the first and last few centimetres of each vertical move.
    start_z = float(expert.ee_pos[2])
    if lift_z - start_z > 2 * NEAR:
        z0 = float(e["pos"][2])
        yield from expert.move([*expert.ee_pos[:2], start_z + NEAR], speed=cfg.careful_speed,
                               phase="lift")
        rose = float(expert.state["objects"][object]["pos"][2]) - z0 > 0.5 * NEAR
        if not rose and not _held(expert, object):
            # Slipped out on the way up (the fingers closed on a corner after the hand was
            # deflected by a neighbour: LIBERO-10's cream cheese between two cartons).
            if regrasps <= 0:
                raise ExpertError(f"{object!r} slipped out of the grasp on every try")
            yield from expert.grip(OPEN, phase="regrasp-open")
            yield from libero_pick_place(expert, object, target, mode, slot, regrasps - 1)
            return
    yield from expert.move([*expert.ee_pos[:2], lift_z], phase="lift")
    yield from expert.move([xy[0], xy[1], lift_z], phase="transfer")
    floor = _drawer_floor(expert, target)
    gap = cfg.place_margin if mode == "on" or floor is not None else cfg.drop_height
    place_z = (floor if floor is not None else _top(expert.state["objects"][target])) \
        + gap + hang
    if place_z < lift_z - 2 * NEAR:
        yield from expert.move([xy[0], xy[1], place_z + NEAR], phase="lower")
    if place_z < lift_z:
        yield from expert.move([xy[0], xy[1], place_z], speed=cfg.careful_speed, phase="place")
    yield from expert.grip(OPEN, phase="release")
    yield from expert.move(expert.ee_pos + [0, 0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


SKILLS.setdefault("libero_pick_place", libero_pick_place)
