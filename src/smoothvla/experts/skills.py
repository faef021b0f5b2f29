"""Scripted skills that solve tabletop stages from privileged state.

Each skill is a generator: it reads the latest privileged state from `expert.state` and
yields one 7-D action per control step. A skill is a short list of phases (move above,
descend, close, lift, ...); every phase plans its motion from the state measured at the
moment it starts, so tracking errors of one phase never carry into the next. Moves are
jerk-limited straight lines (`motion.plan_segment`) that start and end at rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# Expert, ExpertConfig and make_expert are re-exported: they lived here at first.
from smoothvla.experts.expert import (  # noqa: F401
    CLOSE,
    OPEN,
    Actions,
    Expert,
    ExpertConfig,
    ExpertError,
    make_expert,
)
from smoothvla.geometry import quat_to_matrix, wrap_angle
from smoothvla.experts.scene import (
    _drop_spot,
    _hand_clear,
    _horizontal_extent,
    _path_top,
    _top,
    _vertical_extent,
    grasp_yaws,
)


def transit(expert: Expert, goal: np.ndarray, yaw: float | None, exclude: tuple[str, ...],
            hang: float = 0.0, phase: str = "transit") -> Actions:
    """Reach `goal` without sweeping through objects: straight if the path is clear,
    else up to a safe height, across, and down (each a jerk-limited rest-to-rest move).

    `hang` is how far a held object reaches below the fingertips.
    """
    cfg = expert.cfg
    goal = np.asarray(goal, dtype=np.float64)
    start = expert.cmd_pos.copy()
    safe = _path_top(expert, start, goal, exclude) + hang + cfg.clearance
    if safe <= min(start[2], goal[2]) + 1e-6:
        yield from expert.move(goal, yaw, phase=phase)
        return
    height = max(safe, goal[2])
    if start[2] < height - 0.005:
        yield from expert.move([start[0], start[1], height], yaw, phase=f"{phase}-up")
    yield from expert.move([goal[0], goal[1], height], yaw, phase=phase)
    if height > goal[2] + 0.005:
        yield from expert.move(goal, phase=f"{phase}-down")


def _grasp_and_lift(expert: Expert, object: str, target: str, mode: str) -> Actions:
    """Approach, descend, close and lift, retrying (from a fresh plan) when the object moved
    during the approach, the fingers closed on nothing, or the object stayed on the table."""
    cfg = expert.cfg
    for _ in range(cfg.grasp_retries + 1):
        obj = _entry(expert, object)
        bottom = obj["pos"][2] - _vertical_extent(obj)
        grasp_z = max(min(_top(obj) - cfg.grasp_depth, obj["pos"][2]),
                      bottom + cfg.min_grasp_height)
        tcp = np.array([obj["pos"][0], obj["pos"][1], grasp_z])
        dest = _entry(expert, target)
        spot = _drop_spot(expert, target, dest, object, obj) if mode == "in" else \
            np.asarray(dest["pos"][:2], dtype=np.float64)
        gap = cfg.place_margin if mode == "on" else cfg.drop_height
        place_tcp = np.array([spot[0], spot[1], _top(dest) + gap + grasp_z - bottom])
        # The nearest yaw whose open hand clears the neighbours (a drawer front, a bottle)
        # at the grasp and, holding the object, at the place; else clear at the grasp only.
        # With no clear yaw, shrink the safety margin (down to a slight overlap).
        yaws = grasp_yaws(obj, expert._reference, expert.target_yaw)
        for margin in (0.006, 0.0, -0.008, -0.016):
            grasp_ok = [y for y in yaws
                        if _hand_clear(expert, tcp, y, (object,), opening=0.08, margin=margin)]
            both_ok = [y for y in grasp_ok if _hand_clear(
                expert, place_tcp, y, (object, target), opening=float(obj["grasp_width"]),
                margin=margin)]
            if grasp_ok:
                break
        yaw = (both_ok or grasp_ok or yaws)[0]
        hover = np.array([obj["pos"][0], obj["pos"][1], _top(obj) + cfg.hover])
        expert.gripper.target = OPEN
        yield from transit(expert, hover, yaw, exclude=(object,), phase="approach")
        obj = _entry(expert, object)
        if np.linalg.norm(np.asarray(obj["pos"][:2]) - hover[:2]) > 3 * cfg.settle_tol:
            continue  # it was moved while we approached: plan again
        yield from expert.move([obj["pos"][0], obj["pos"][1], grasp_z], speed=cfg.careful_speed,
                               phase="descend")
        yield from expert.grip(CLOSE, phase="close")
        if _holding(expert, object):
            z0 = float(_entry(expert, object)["pos"][2])
            yield from expert.move(expert.cmd_pos + [0.0, 0.0, cfg.clearance],
                                   speed=cfg.careful_speed, phase="lift")
            if float(_entry(expert, object)["pos"][2]) - z0 > 0.5 * cfg.clearance:
                return
        yield from expert.grip(OPEN, phase="regrasp-open")
        yield from expert.move(expert.cmd_pos + [0, 0, cfg.hover], speed=cfg.careful_speed,
                               phase="regrasp-lift")
    raise ExpertError(f"could not grasp {object!r} after {cfg.grasp_retries + 1} attempts")


def pick_place(expert: Expert, object: str, target: str, mode: str = "on") -> Actions:
    """Grasp `object` from above and put it on (or drop it into) `target`."""
    if mode not in ("on", "in"):
        raise ExpertError(f"pick_place mode must be 'on' or 'in', got {mode!r}")
    cfg = expert.cfg
    yield from _grasp_and_lift(expert, object, target, mode)
    obj = _entry(expert, object)
    hang = expert.ee_pos[2] - (obj["pos"][2] - _vertical_extent(obj))  # ee above object bottom
    offset = np.asarray(obj["pos"], dtype=np.float64) - expert.ee_pos
    dest = _entry(expert, target)
    spot = _drop_spot(expert, target, dest, object, obj) if mode == "in" else \
        np.asarray(dest["pos"][:2], dtype=np.float64)
    xy = spot - offset[:2]
    gap = cfg.place_margin if mode == "on" else cfg.drop_height
    place_z = _top(dest) + gap + hang
    above = np.array([xy[0], xy[1], place_z + cfg.clearance])
    yield from transit(expert, above, None, exclude=(object,), hang=hang, phase="transfer")
    yield from expert.move([xy[0], xy[1], place_z], speed=cfg.careful_speed, phase="place")
    yield from expert.grip(OPEN, phase="release")
    yield from expert.move([xy[0], xy[1], place_z + cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def _push_yaws(expert: Expert, d: np.ndarray) -> list[float]:
    """Yaws for pushing along d: fingers side by side across d first, then along d."""
    finger0 = quat_to_matrix(expert._reference)[:, 1]
    offset = math.atan2(finger0[1], finger0[0])
    out = []
    for base in (math.atan2(-d[0], d[1]), math.atan2(d[1], d[0])):
        yaw = wrap_angle(base - offset)
        out.append(min((wrap_angle(yaw + k * math.pi) for k in (0, 1)),
                       key=lambda y: abs(wrap_angle(y - expert.target_yaw))))
    return out


def _push_leg(expert: Expert, name: str, obj_xy: np.ndarray, to_xy: np.ndarray,
              push_z: float) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(yaw, start, end) fingertip xy for pushing `name` from obj_xy to to_xy, or None when
    no yaw keeps the hand clear of other objects from the start to the end of the leg."""
    cfg = expert.cfg
    obj = _entry(expert, name)
    d = to_xy - obj_xy
    length = float(np.linalg.norm(d))
    if length < 1e-6:
        return None
    d = d / length
    reach = _horizontal_extent(obj, d) + cfg.finger_radius
    start = obj_xy - d * (reach + cfg.push_standoff)
    end = to_xy - d * reach
    for yaw in _push_yaws(expert, d):
        points = np.linspace(start, end, max(2, int(np.linalg.norm(end - start) / 0.02) + 1))
        if all(_hand_clear(expert, np.array([p[0], p[1], push_z]), yaw, (name,))
               for p in points):
            return yaw, start, end
    return None


def _push_route(expert: Expert, name: str, goal_xy: np.ndarray, push_z: float
                ) -> list[np.ndarray]:
    """Object waypoints ending at the goal: straight when feasible, else via the shortest
    feasible intermediate point (a dog-leg around whatever blocks the hand)."""
    obj_xy = np.asarray(_entry(expert, name)["pos"][:2], dtype=np.float64)
    if _push_leg(expert, name, obj_xy, goal_xy, push_z) is not None:
        return [goal_xy]
    best, best_len = None, math.inf
    for r in (0.06, 0.1, 0.14):
        for phi in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            w = obj_xy + r * np.array([math.cos(phi), math.sin(phi)])
            total = r + float(np.linalg.norm(goal_xy - w))
            if total >= best_len:
                continue
            if _push_leg(expert, name, obj_xy, w, push_z) is None:
                continue
            # Second leg: judge it as if the object already sat at w.
            if _push_leg(expert, name, w, goal_xy, push_z) is None:
                continue
            best, best_len = w, total
    return [goal_xy] if best is None else [best, goal_xy]


def _low_path_clear(expert: Expert, name: str, a: np.ndarray, b: np.ndarray, z: float,
                    yaw: float) -> bool:
    """Whether the fingertips can go straight from a to b (xy) at height z: clear of the
    pushed object's footprint circle and, hand included, of everything else."""
    obj = _entry(expert, name)
    centre = np.asarray(obj["pos"][:2], dtype=np.float64)
    radius = float(np.hypot(*np.asarray(obj["half_size"][:2]))) + expert.cfg.finger_radius + 0.008
    ab = b - a
    t = float(np.clip((centre - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    if np.linalg.norm(a + t * ab - centre) < radius:
        return False
    points = np.linspace(a, b, max(2, int(np.linalg.norm(ab) / 0.02) + 1))
    return all(_hand_clear(expert, np.array([p[0], p[1], z]), yaw, (name,)) for p in points)


def push(expert: Expert, object: str, goal: tuple[float, float], tolerance: float = 0.015,
         max_legs: int = 8, leg_length: float = 0.1) -> Actions:
    """Push `object` to `goal` (x, y) in legs of at most `leg_length`.

    The fingers are half open (`push_gripper`) and side by side across the push direction,
    so the object is pushed at two points a few centimetres apart and does not spin off the
    line as it does under a single closed fingertip. Each leg re-aims from the measured
    object position; the fingers stay in contact between legs unless the object slipped
    sideways off the line, then they back off and re-approach from behind (round the object
    at push height when that path is clear). When the straight line is blocked (the hand
    would hit another object) the route takes one intermediate point.
    """
    cfg = expert.cfg
    goal_xy = np.asarray(goal, dtype=np.float64).reshape(2)
    expert.gripper.target = cfg.push_gripper
    obj = _entry(expert, object)
    bottom = float(obj["pos"][2]) - _vertical_extent(obj)
    # Pads (+-12.5 mm about the fingertip) low on the object but clear of flat things.
    push_z = bottom + min(cfg.push_height, max(2 * _vertical_extent(obj) - 0.0165, 0.0145))
    route = _push_route(expert, object, goal_xy, push_z)
    in_contact = False
    for _ in range(max_legs):
        obj = _entry(expert, object)
        pos = np.asarray(obj["pos"][:2], dtype=np.float64)
        if np.linalg.norm(goal_xy - pos) < tolerance:
            break
        if len(route) > 1 and np.linalg.norm(route[0] - pos) < 0.02:
            route.pop(0)
            in_contact = False  # a new direction: approach the object afresh
        waypoint = route[0]
        dist = float(np.linalg.norm(waypoint - pos))
        step_to = pos + (waypoint - pos) * min(1.0, leg_length / max(dist, 1e-9))
        leg = _push_leg(expert, object, pos, step_to, push_z)
        if leg is None:  # blocked after all: push straight and hope (rare)
            d = (step_to - pos) / max(float(np.linalg.norm(step_to - pos)), 1e-9)
            reach = _horizontal_extent(obj, d) + cfg.finger_radius
            leg = (_push_yaws(expert, d)[0], pos - d * (reach + cfg.push_standoff),
                   step_to - d * reach)
        yaw, start, end = leg
        d = (end - start) / max(float(np.linalg.norm(end - start)), 1e-9)
        # Off the line: the fingertip is no longer behind the object's centre.
        behind = pos - d * (np.linalg.norm(pos - start) - cfg.push_standoff)
        offset = expert.cmd_pos[:2] - behind
        lateral = float(np.linalg.norm(offset - (offset @ d) * d))
        if in_contact and (lateral > cfg.push_lateral_tol
                           or abs(wrap_angle(yaw - expert.target_yaw)) > 0.2):
            back = expert.cmd_pos[:2] - d * cfg.push_standoff
            yield from expert.move([back[0], back[1], push_z], speed=cfg.careful_speed,
                                   phase="back-off")
            in_contact = False
        if not in_contact:
            goal3 = np.array([start[0], start[1], push_z])
            if abs(expert.cmd_pos[2] - push_z) < 0.01 and _low_path_clear(
                    expert, object, expert.cmd_pos[:2], start, push_z, yaw):
                # Already down beside the object: go round it at push height.
                yield from expert.move(goal3, yaw, speed=cfg.careful_speed, phase="re-approach")
            else:
                yield from transit(expert, goal3, yaw, exclude=(), phase="approach")
        yield from expert.move([end[0], end[1], push_z], yaw, speed=cfg.careful_speed,
                               phase="push")
        in_contact = True
    d = goal_xy - expert.cmd_pos[:2]
    back = expert.cmd_pos[:2] - d / max(float(np.linalg.norm(d)), 1e-9) * cfg.push_standoff
    yield from expert.move([back[0], back[1], push_z], speed=cfg.careful_speed, phase="back-off")
    yield from expert.move(expert.cmd_pos + [0, 0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def _drawer_geometry(expert: Expert, articulation: str):
    """(state, out (3,) unit direction the handle moves when opening, handle (3,), yaw with
    the fingers side by side along the front)."""
    art = _articulation(expert, articulation)
    axis = np.asarray(art["axis"], dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    out = axis * (1.0 if float(art["open_qpos"]) >= float(art["closed_qpos"]) else -1.0)
    handle = np.asarray(art["handle_pos"], dtype=np.float64)
    yaw = _push_yaws(expert, out[:2] / max(float(np.linalg.norm(out[:2])), 1e-9))[0]
    return art, out, handle, yaw


def open_articulation(expert: Expert, articulation: str) -> Actions:
    """Open a drawer: press the closed fingers onto the top of its handle bar and drag it out.

    A top-down gripper cannot close around the handle here (the hand would hit the cabinet
    front), so the pull relies on pad friction under a small downward press.
    """
    cfg = expert.cfg
    art, out, handle, yaw = _drawer_geometry(expert, articulation)
    travel = abs(float(art["open_qpos"]) - float(art["qpos"])) + cfg.drawer_overshoot
    if travel <= cfg.drawer_overshoot + 0.005:
        return
    expert.gripper.target = CLOSE
    press = handle + [0.0, 0.0, cfg.handle_half_thickness + 0.0125 - cfg.handle_press]
    yield from transit(expert, press + [0.0, 0.0, cfg.hover], yaw, exclude=(), phase="approach")
    yield from expert.move(press, speed=cfg.careful_speed, phase="press")
    yield from expert.move(expert.cmd_pos + out * travel, speed=cfg.careful_speed * 0.5,
                           phase="pull")
    yield from expert.move(expert.cmd_pos + [0.0, 0.0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def close_articulation(expert: Expert, articulation: str) -> Actions:
    """Close a drawer: push its handle bar in with the closed fingers at handle height."""
    cfg = expert.cfg
    art, out, handle, yaw = _drawer_geometry(expert, articulation)
    travel = abs(float(art["qpos"]) - float(art["closed_qpos"]))
    if travel < 0.005:
        return
    expert.gripper.target = CLOSE
    contact = cfg.handle_half_thickness + cfg.finger_radius
    start = handle + out * (contact + cfg.push_standoff)
    end = handle - out * (travel + cfg.drawer_overshoot) + out * contact
    yield from transit(expert, start, yaw, exclude=(), phase="approach")
    yield from expert.move(end, speed=cfg.careful_speed, phase="push")
    yield from expert.move(expert.cmd_pos + out * cfg.push_standoff, speed=cfg.careful_speed,
                           phase="back-off")
    yield from expert.move(expert.cmd_pos + [0.0, 0.0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def _entry(expert: Expert, name: str) -> dict[str, Any]:
    objects = expert.state["objects"]
    if name not in objects:
        raise ExpertError(f"object {name!r} not in the state (objects: {sorted(objects)})")
    return objects[name]


def _articulation(expert: Expert, name: str) -> dict[str, Any]:
    arts = expert.state.get("articulations", {})
    if name not in arts:
        raise ExpertError(f"articulation {name!r} not in the state (has: {sorted(arts)})")
    return arts[name]


def _holding(expert: Expert, name: str) -> bool:
    """Fingers stopped on something about the object's grasp width (not closed on air)."""
    opening = float(expert.state["gripper"])
    width = float(_entry(expert, name).get("grasp_width", 0.0))
    return opening > 0.3 * width and opening > 0.004


SKILLS: dict[str, Callable[..., Actions]] = {
    "pick_place": pick_place,
    "push": push,
    "open": open_articulation,
    "close": close_articulation,
}
