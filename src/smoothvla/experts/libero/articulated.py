"""Articulated goals on real LIBERO scenes: drawers, the microwave door, the stove knob.

LIBERO checks these goals on one joint each (`libero/envs/objects/articulated_objects.py`):
a cabinet drawer is open below -0.14 m and closed above 0.0 m (slide joint, limits -0.16
to 0.01), the microwave door is open below -1.3 rad and closed above -0.005 rad (hinge,
-2.094 to 0), the flat stove is on from 0.5 rad of its knob (hinge, -0.005 to 2.1). The
privileged state carries the joint position, those thresholds, and the handle and part
boxes (`envs/libero/state.py`). Every skill aims past the threshold (`joint_target`),
does nothing when the predicate already holds, and uses the shared jerk-limited
`Expert.move`, the gripper pointing down:

- knob (Turnon / Turnoff): grasp the raised bar of the knob across its width, on the
  knob's axis, and turn the hand's yaw by the joint travel (the grip site is on the
  axis, so turning the hand turns the knob about its own axis).
- drawer, Open: the closed fingertips press on the top of the handle bar and drag it out
  (the fingers cannot reach behind the bar: its gap to the drawer front is 1.6 cm, a
  fingertip 1.45 cm); friction under a press of about 1 cm pulls it, slowly (the
  drawer joints are damped, 50 N s/m on the white cabinet). Retried from the new handle
  position while the drawer is not open. Pressing works for a top drawer only: over a
  lower drawer's handle sits the next drawer's handle, 5.7 cm higher, and the Panda hand
  starts 4 cm above the fingertips and is 6 cm thick, so it cannot get down to it.
- drawer, Close: the closed fingers, side by side along the bar, push the bar in at its
  end nearer to the hand (on LIBERO-10's white cabinet the forearm meets the cabinet top
  before the bar is in: see docs/libero.md, Known limits).
- door (microwave), Close: the side of the closed hand pushes the door along its arc,
  below the handle, the hand turning with the door (`_close_door`). Open: the fingers
  grasp the handle's bar from above and pull it along its arc, the hand turning with the
  door, to 0.3 rad short of the threshold; the hand lets go, goes over the door's top to
  its inner face (now clear of the cabinet) and pushes it on along its arc, as Close does
  from outside (`_open_door`: pulled all the way, the handle of LIBERO-90 KITCHEN_SCENE7's
  microwave ends out of the arm's reach). Putting something into the microwave: `door.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from smoothvla.experts.expert import CLOSE, OPEN, Expert, ExpertError
from smoothvla.experts.motion import down_quat, plan_segment
from smoothvla.experts.skills import SKILLS
from smoothvla.geometry import (
    axis_angle_quat,
    quat_conj,
    quat_mul,
    quat_to_axis_angle,
    quat_to_matrix,
    wrap_angle,
    yaw_quat,
)

Actions = Iterator[np.ndarray]
COMPARE = {"<": lambda q, v: q < v, ">": lambda q, v: q > v, ">=": lambda q, v: q >= v}
# How far past LIBERO's threshold a skill aims: slide joints (m), hinges (rad).
MARGIN = {"drawer": 0.015, "door": 0.3, "knob": 0.3}
FINGER_BELOW = 0.01       # fingertip bottom under the grip site, m (Panda mesh, measured)
FINGER_HALF_WIDTH = 0.013  # fingers' half width across the closing axis, m (measured)
DRAG_TILT = 1.13          # hand tilt while dragging a drawer open, rad (65 degrees)
KNOB_DEPTH = 0.02         # grip site under the top of the knob's bar, m
HANDLE_PRESS = 0.012      # commanded press of the fingertips into a drawer handle's top, m
PUSH_OVERSHOOT = 0.012    # commanded travel past the target when pushing, m
DRAG_SPEED = 0.15         # speed factor while dragging a drawer (damped slide joint)
ATTEMPTS = 3
DOOR_RADIUS = 0.16        # where the hand pushes a door, from the hinge, m (handle at 0.24)
DOOR_HEIGHT = -0.01       # grip site over the hinge anchor's height (door mid-height), m
DOOR_CONTACT = 0.045      # grip site off the hinge line while pushing (panel face 0.025), m
DOOR_STANDOFF = 0.12      # grip site off the hinge line before and after the push, m (clears
                          # the handle, 6.4 cm out, by 2 cm with the hand 3.7 cm thick)
DOOR_OVERPUSH = 0.05      # commanded arc past the closed position, rad
DOOR_SPEED = 0.3          # speed factor along the door's arc
HANDLE_BAR = 0.01         # half thickness of a door handle's bar (its outer part), m
HANDLE_GRIP_DEPTH = 0.02  # grip site under the top of a door handle, m
HANDLE_CLEAR = 0.02       # fingertips over the door's top, going over it from the handle, m
PULL_SPEED = 0.3          # speed factor while pulling a door open by its handle
PULL_SHORT = 0.3          # the pull stops this short of LIBERO's open threshold, rad
DOOR_INNER_CONTACT = 0.02   # grip site off the door's inner face while pushing it open, m
DOOR_INNER_STANDOFF = 0.07  # and before and after the push, m


def satisfied(entry: dict[str, Any], predicate: str) -> bool:
    """Whether LIBERO's predicate holds for an articulation entry (its own comparison)."""
    op, value = entry["thresholds"][predicate]
    return bool(COMPARE[op](float(entry["qpos"]), value))


def joint_target(entry: dict[str, Any], predicate: str, full: bool = False) -> float:
    """A joint position past LIBERO's threshold by `MARGIN`, within the joint limits; with
    `full`, the limit itself (a drawer opened all the way, to take a bowl)."""
    op, value = entry["thresholds"][predicate]
    lo, hi = entry["limits"]
    if full:
        return float(lo if op == "<" else hi)
    margin = MARGIN[entry["kind"]]
    return float(np.clip(value - margin if op == "<" else value + margin, lo, hi))


def done(entry: dict[str, Any], predicate: str, full: bool = False) -> bool:
    """LIBERO's predicate holds (and, with `full`, the joint is within 8 mm / 0.05 rad of
    its limit: a bowl still fits, and friction drags stop a few mm short)."""
    if not satisfied(entry, predicate):
        return False
    tolerance = 0.008 if entry["kind"] == "drawer" else 0.05
    return not full or abs(float(entry["qpos"]) - joint_target(entry, predicate, True)) < tolerance


def _entry(expert: Expert, name: str) -> dict[str, Any]:
    arts = expert.state.get("articulations", {})
    if name not in arts:
        raise ExpertError(f"articulation {name!r} not in the state (has: {sorted(arts)})")
    return arts[name]


def _finger_yaw(expert: Expert, direction: np.ndarray) -> float:
    from smoothvla.experts.libero.skills import _finger_yaw as finger_yaw

    return finger_yaw(expert, direction)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)[:2]
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _handle_box(entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre (3,), world-aligned half extents (3,), rotation (3, 3)) of the handle."""
    rot = quat_to_matrix(entry["handle_quat"])
    half = np.asarray(entry["handle_half"], dtype=np.float64)
    return np.asarray(entry["handle_pos"], dtype=np.float64), np.abs(rot) @ half, rot


def _opening_direction(entry: dict[str, Any]) -> np.ndarray:
    """(2,) horizontal direction a drawer's handle moves when it opens."""
    op, _ = entry["thresholds"]["open"]
    return _unit(np.asarray(entry["axis"]) * (-1.0 if op == "<" else 1.0))


def clear_of_drawer_fronts(entry: dict[str, Any], ee_xy: np.ndarray, hand_half: float,
                           margin: float = 0.005, held_offset: np.ndarray | None = None,
                           held_half: float = 0.0) -> np.ndarray:
    """(2,) `ee_xy` moved out of the drawer (along its opening direction) as far as needed to
    keep a hand of half width `hand_half`, and a held object (centre at `ee_xy` +
    `held_offset`, half extent `held_half` along the drawer's axis), in front of the
    cabinet's other handles, which stick out as far as this drawer's handle does when
    closed (the next drawer's handle sits right above an open drawer)."""
    centre, extent, _ = _handle_box(entry)
    out = _opening_direction(entry)
    closed_face = float(centre[:2] @ out + np.abs(out) @ extent[:2]) - abs(float(entry["qpos"]))
    short = closed_face + hand_half + margin - float(ee_xy @ out)
    if held_offset is not None:
        held = float((ee_xy + held_offset) @ out) - held_half
        short = max(short, closed_face + margin - held)
    return ee_xy + out * max(short, 0.0)


def libero_articulate(expert: Expert, articulation: str, predicate: str,
                      full: bool = False) -> Actions:
    """Make LIBERO's `predicate` (open, close, turnon, turnoff) hold for `articulation`;
    `full`: open a drawer to its limit (the plan asks so before putting something in)."""
    entry = _entry(expert, articulation)
    if predicate not in entry["thresholds"]:
        raise ExpertError(f"{articulation!r} ({entry['kind']}) has no {predicate!r} check")
    kind = entry["kind"]
    full = full and kind == "drawer"
    for attempt in range(ATTEMPTS):
        entry = _entry(expert, articulation)
        if done(entry, predicate, full) or (attempt and full and satisfied(entry, predicate)):
            return  # a full open that falls short once still leaves LIBERO's check holding
        if kind == "knob":
            yield from _turn_knob(expert, articulation, predicate)
        elif kind == "drawer" and predicate == "open":
            yield from _drag_drawer(expert, articulation, predicate, full)
        elif kind == "drawer":
            yield from _push_drawer(expert, articulation, predicate)
        elif kind == "door" and predicate == "close":
            yield from _close_door(expert, articulation, predicate)
        elif kind == "door":
            yield from _open_door(expert, articulation, predicate)
        else:
            raise ExpertError(f"no skill to {predicate} a {kind} ({articulation!r})")
    if not satisfied(_entry(expert, articulation), predicate):
        raise ExpertError(f"could not {predicate} {articulation!r} in {ATTEMPTS} attempts "
                          f"(joint at {_entry(expert, articulation)['qpos']:.3f})")


def _go_above(expert: Expert, point: np.ndarray, yaw: float, height: float) -> Actions:
    """Up (if needed), across at `height`, and down to `point` + hover."""
    cfg = expert.cfg
    hover = np.array([point[0], point[1], max(point[2] + cfg.hover, height)])
    if expert.ee_pos[2] < hover[2] - 0.01:
        yield from expert.move([*expert.ee_pos[:2], hover[2]], phase="lift-clear")
    yield from expert.move(hover, yaw, phase="approach")


def _turn_knob(expert: Expert, name: str, predicate: str) -> Actions:
    cfg = expert.cfg
    entry = _entry(expert, name)
    centre, extent, rot = _handle_box(entry)
    half = np.asarray(entry["handle_half"], dtype=np.float64)
    axes = sorted(range(3), key=lambda i: abs(rot[2, i]))[:2]
    long_axis = max(axes, key=lambda i: half[i])
    bar = _unit(rot[:, long_axis])
    reach = max(0.0, half[long_axis] - 0.012)
    anchor = np.asarray(entry["anchor"], dtype=np.float64)
    s = float(np.clip((anchor[:2] - centre[:2]) @ bar, -reach, reach))
    xy = centre[:2] + s * bar
    top = float(centre[2] + extent[2])
    point = np.array([xy[0], xy[1], top - KNOB_DEPTH])
    yaw = _finger_yaw(expert, np.array([-bar[1], bar[0]]))
    turn = (joint_target(entry, predicate) - float(entry["qpos"])) * math.copysign(
        1.0, float(entry["axis"][2]))
    expert.gripper.target = OPEN
    yield from _go_above(expert, point, yaw, top + cfg.hover)
    yield from expert.move(point, speed=cfg.careful_speed, phase="descend")
    yield from expert.grip(CLOSE, phase="close")
    yield from expert.move(point, yaw=expert.target_yaw + turn, speed=cfg.careful_speed,
                           phase="turn")
    yield from expert.grip(OPEN, phase="release")
    yield from expert.move(point + [0.0, 0.0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def _near_end(expert: Expert, centre: np.ndarray, extent: np.ndarray,
              out: np.ndarray) -> np.ndarray:
    """(2,) point on a drawer handle's bar 1.5 cm in from the end nearer to the hand: the
    arm reaches the far side of a low drawer only just (a push at the bar's centre stalls
    at full stretch)."""
    along = np.array([-out[1], out[0]])
    half = float(np.abs(along) @ extent[:2])
    ends = [centre[:2] + sign * max(half - 0.015, 0.0) * along for sign in (-1, 1)]
    return min(ends, key=lambda p: float(np.linalg.norm(p - expert.ee_pos[:2])))


def _tilt_yaw(expert: Expert, out: np.ndarray) -> float:
    """Yaw that closes the fingers across `out` with the hand's x axis along `out`: of the
    two such yaws, the one the arm holds tilted (with the other the OSC lags by 2-3 cm on
    the wooden cabinet: measured on LIBERO-Goal init states 0-5)."""
    x0 = quat_to_matrix(expert._reference)[:, 0]
    return wrap_angle(math.atan2(out[1], out[0]) - math.atan2(x0[1], x0[0]))


def _tilt(expert: Expert, base: np.ndarray, axis: np.ndarray, angle: float,
          phase: str) -> Actions:
    """Turn the commanded orientation about the horizontal world `axis` (3,) to `angle`
    (rad) away from the pointing-down orientation `base` (the expert's reference), on a
    jerk-limited profile (ruckig's yaw channel of `plan_segment`, at the yaw limits).

    The shared `Expert` commands yaw about world z on top of its `_reference`; tilting
    re-bases that reference so that the commanded orientation is the tilt applied to the
    current yaw, and tilting back to 0 restores `base` exactly.
    """
    yaw = expert.target_yaw
    current = _tilt_of(expert, base, axis, yaw)
    rows = plan_segment(expert.cmd_pos, expert.cmd_pos, expert.dt, expert.cfg.limits,
                        current, angle)
    expert.phase = phase
    for row in rows:
        expert._reference = _tilted_reference(base, axis, float(row[3]), yaw)
        yield expert.hold()
    expert._reference = _tilted_reference(base, axis, angle, yaw) if angle else base.copy()


def _tilted_reference(base: np.ndarray, axis: np.ndarray, angle: float,
                      yaw: float) -> np.ndarray:
    """Reference q such that down_quat(yaw, q) = tilt(axis, angle) * down_quat(yaw, base)."""
    tilt = axis_angle_quat(np.asarray(axis, dtype=np.float64) * angle)
    return quat_mul(quat_conj(yaw_quat(yaw)), quat_mul(tilt, quat_mul(yaw_quat(yaw), base)))


def _tilt_of(expert: Expert, base: np.ndarray, axis: np.ndarray, yaw: float) -> float:
    """The tilt angle the expert's reference currently carries about `axis` (0 at `base`)."""
    rel = quat_mul(down_quat(yaw, expert._reference), quat_conj(down_quat(yaw, base)))
    return float(quat_to_axis_angle(rel) @ np.asarray(axis, dtype=np.float64))


def _handle_frame(expert: Expert, name: str) -> tuple:
    """A drawer's entry, its handle box (centre, half extents), the horizontal unit vector
    out of the cabinet, the one across the handle, and the hand yaw for the tilted grip."""
    entry = _entry(expert, name)
    centre, extent, _ = _handle_box(entry)
    out = _opening_direction(entry)
    return entry, centre, extent, out, np.array([-out[1], out[0]]), _tilt_yaw(expert, out)


def _drag_drawer(expert: Expert, name: str, predicate: str, full: bool) -> Actions:
    """Press the closed fingertips onto the handle bar, the hand tilted by `DRAG_TILT` away
    from the cabinet, and drag the bar out.

    Upright, the hand (4 cm above the fingertips, 6 cm thick) would sit on the handle of
    the drawer above; tilted, it leans out of the cabinet and clears it by about 1 cm
    (hand box in the hand frame: thin axis -0.026..0.037 m, 0.03..0.123 m above the grip
    site; fingers -0.013..0.013 m thin, down to 0.01 m under it). The fingertips come in
    level from outside, press, drag, and back out before the hand turns upright again.
    """
    cfg = expert.cfg
    entry, centre, extent, out, across, yaw = _handle_frame(expert, name)
    out3 = np.array([out[0], out[1], 0.0])
    travel = abs(joint_target(entry, predicate, full) - float(entry["qpos"])) + PUSH_OVERSHOOT
    top = float(centre[2] + extent[2])
    # The lowest fingertip corner, tilted: 1.3 cm across x sin + 1 cm down x cos below the
    # grip site, and about level with it along `out`: it lands just inside the bar's edge.
    drop = FINGER_HALF_WIDTH * math.sin(DRAG_TILT) + FINGER_BELOW * math.cos(DRAG_TILT)
    xy = _near_end(expert, centre, extent, out) + out * 0.004
    touch = np.array([xy[0], xy[1], top + drop])
    press = touch - [0.0, 0.0, HANDLE_PRESS]
    entry_point = touch + out3 * 0.08 + [0.0, 0.0, 0.004]
    base = expert._reference.copy()
    axis = np.array([across[0], across[1], 0.0])
    expert.gripper.target = CLOSE
    yield from _go_above(expert, entry_point, yaw, top + cfg.hover)
    yield from _tilt(expert, base, axis, DRAG_TILT, phase="tilt")
    yield from expert.move(entry_point, speed=cfg.careful_speed, phase="descend")
    yield from expert.move(touch + [0.0, 0.0, 0.004], speed=cfg.careful_speed, phase="reach-in")
    yield from expert.move(press, speed=cfg.careful_speed * 0.5, phase="press")
    yield from expert.move(press + out3 * travel, speed=DRAG_SPEED, phase="drag")
    yield from expert.move(expert.cmd_pos + out3 * 0.03 + [0.0, 0.0, 0.02],
                           speed=cfg.careful_speed, phase="retreat")
    yield from _tilt(expert, base, axis, 0.0, phase="untilt")


def _push_drawer(expert: Expert, name: str, predicate: str) -> Actions:
    """Push the handle bar in with the front of the closed fingers, the hand tilted by
    `DRAG_TILT` away from the cabinet as for `_drag_drawer` (upright over a low drawer, the
    forearm meets the cabinet top before the drawer is in, and the hand the handle above)."""
    cfg = expert.cfg
    entry, centre, extent, out, across, yaw = _handle_frame(expert, name)
    out3 = np.array([out[0], out[1], 0.0])
    travel = abs(joint_target(entry, predicate) - float(entry["qpos"])) + PUSH_OVERSHOOT
    face = float(np.abs(out) @ extent[:2])
    # The tilted fingers' front edge: this far in from the grip site, 5 mm above it.
    reach = FINGER_HALF_WIDTH * math.cos(DRAG_TILT) + FINGER_BELOW * math.sin(DRAG_TILT)
    z = float(centre[2]) - (FINGER_HALF_WIDTH * math.sin(DRAG_TILT)
                            - FINGER_BELOW * math.cos(DRAG_TILT))
    xy = _near_end(expert, centre, extent, out)
    start = np.array([*(xy + out * (face + reach + cfg.push_standoff)), z])
    end = np.array([*(xy - out * (travel - face - reach)), z])
    base = expert._reference.copy()
    axis = np.array([across[0], across[1], 0.0])
    expert.gripper.target = CLOSE
    yield from _go_above(expert, start, yaw, float(centre[2] + extent[2]) + cfg.hover)
    yield from _tilt(expert, base, axis, DRAG_TILT, phase="tilt")
    yield from expert.move(start, speed=cfg.careful_speed, phase="descend")
    yield from expert.move(end, speed=cfg.careful_speed * 0.5, phase="push")
    back = end + out3 * cfg.push_standoff
    yield from expert.move(back, speed=cfg.careful_speed, phase="back-off")
    yield from expert.move(back + [0.0, 0.0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")
    yield from _tilt(expert, base, axis, 0.0, phase="untilt")


def _door_point(entry: dict[str, Any], theta: float, radius: float, offset: float,
                z: float) -> np.ndarray:
    """(3,) point at `radius` along a door whose panel points at world angle `theta` from
    its hinge, `offset` out on the side the door closes away from (its outer face)."""
    anchor = np.asarray(entry["anchor"], dtype=np.float64)
    along = np.array([math.cos(theta), math.sin(theta)])
    out = _door_out(theta, math.copysign(1.0, float(entry["axis"][2])))
    return np.array([*(anchor[:2] + radius * along + offset * out), z])


def _door_frame(entry: dict[str, Any]) -> tuple[float, float]:
    """(world angle of the door's panel from its hinge, sign of the hinge axis' z)."""
    rot = quat_to_matrix(entry["part_quat"])
    return math.atan2(rot[1, 0], rot[0, 0]), math.copysign(1.0, float(entry["axis"][2]))


def _door_out(theta: float, sign: float) -> np.ndarray:
    """(2,) unit normal of a door panel at angle `theta` on its outer face (the side it
    closes away from, and moves towards when it opens): as `_door_point`."""
    return np.array([math.sin(theta), -math.cos(theta)]) * sign


def _door_yaw(expert: Expert, theta: float, arc: float) -> float:
    """Of the two yaws that close the fingers along a door panel at angle `theta`, the one
    whose turn by `arc` with the door stays nearest the reset yaw (the other ends the wrist
    near its joint limit)."""
    along = np.array([math.cos(theta), math.sin(theta)])
    return min((wrap_angle(_finger_yaw(expert, along) + k * math.pi) for k in (0, 1)),
               key=lambda y: abs(y + arc / 2))


def _follow_arc(expert: Expert, entry: dict[str, Any], theta0: float, theta1: float,
                radius: float, offset: float, z: float, yaw0: float, speed: float,
                phase: str) -> Actions:
    """Move the commanded hand along the circle about the door's hinge from panel angle
    `theta0` to `theta1`, at `radius` and `offset` (`_door_point`), the yaw turning with
    the door (as if fixed to it): jerk-limited in arc length at `radius`, at `speed`."""
    length = radius * abs(theta1 - theta0)
    rows = plan_segment(np.zeros(3), np.array([length, 0.0, 0.0]), expert.dt,
                        expert.cfg.limits.scaled(speed))
    expert.phase = phase
    for row in rows:
        theta = theta0 + math.copysign(float(row[0]) / radius, theta1 - theta0)
        expert.target_pos = _door_point(entry, theta, radius, offset, z)
        expert.target_yaw = yaw0 + (theta - theta0)
        yield expert.hold()


def _close_door(expert: Expert, name: str, predicate: str) -> Actions:
    """Push the door shut along its arc with the side of the closed hand, the hand turning
    with the door (as if fixed to it): jerk-limited in arc length, at `DOOR_RADIUS` from
    the hinge, below the handle, past the closed position by `DOOR_OVERPUSH`."""
    cfg = expert.cfg
    entry = _entry(expert, name)
    theta0, sign = _door_frame(entry)
    turn = (joint_target(entry, predicate) - float(entry["qpos"])) * sign
    theta1 = theta0 + turn + math.copysign(DOOR_OVERPUSH, turn)
    top = float(entry["part_pos"][2] + entry["part_half"][2])
    yaw0 = _door_yaw(expert, theta0, theta1 - theta0)
    yield from _push_door(expert, entry, theta0, theta1, DOOR_CONTACT, DOOR_STANDOFF, yaw0,
                          top + cfg.hover)


def _push_door(expert: Expert, entry: dict[str, Any], theta0: float, theta1: float,
               contact: float, standoff: float, yaw0: float, above: float) -> Actions:
    """The side of the closed hand pushes the panel from angle `theta0` to `theta1` at
    `DOOR_RADIUS` from the hinge and `DOOR_HEIGHT` over it, `contact` out of the hinge line
    (`standoff` before and after): over at height `above`, down, in, along the arc, hold,
    back off and up."""
    cfg = expert.cfg
    z = float(entry["anchor"][2]) + DOOR_HEIGHT
    start = _door_point(entry, theta0, DOOR_RADIUS, standoff, z)
    expert.gripper.target = CLOSE
    yield from _go_above(expert, start, yaw0, above)
    yield from expert.move(start, speed=cfg.careful_speed, phase="descend")
    yield from expert.move(_door_point(entry, theta0, DOOR_RADIUS, contact, z),
                           speed=cfg.careful_speed * 0.5, phase="reach")
    yield from _follow_arc(expert, entry, theta0, theta1, DOOR_RADIUS, contact, z, yaw0,
                           DOOR_SPEED, phase="push-door")
    yield from expert.wait(5, phase="hold-door")
    back = _door_point(entry, theta1, DOOR_RADIUS, standoff, z)
    yield from expert.move(back, speed=cfg.careful_speed, phase="back-off")
    yield from expert.move(back + [0.0, 0.0, cfg.hover], speed=cfg.careful_speed,
                           phase="retreat")


def _open_door(expert: Expert, name: str, predicate: str) -> Actions:
    """Pull the door open by its handle (`_pull_door`) to `PULL_SHORT` before LIBERO's open
    threshold, then push it on from inside (`_push_door_open`) to `joint_target`.

    Pulling further is out of reach where the hinge is on the far side from the robot: on
    LIBERO-90 KITCHEN_SCENE7 the grip site swings away from the robot, from 0.77 m off
    the shoulder at -1.0 rad to 0.91 m at -1.6 rad. Pulled all the way (to -1.6), the
    door got to -1.41 rad while the hand lagged with saturated actions; pulled to -1.35,
    it stopped short of -1.3 on 8 of init states 0-9; pulled to -1.1, the stretched arm
    stalled 4 cm short of the push's start on 2 of init states 0-49 (no contact: the
    controller's equilibrium). At the end the inner face faces the robot. A door already
    past `pull_to` is only pushed."""
    entry = _entry(expert, name)
    op, threshold = entry["thresholds"][predicate]
    pull_to = threshold + (PULL_SHORT if op == "<" else -PULL_SHORT)
    q = float(entry["qpos"])
    height = expert.cfg.hover
    if (pull_to - q) * (joint_target(entry, predicate) - q) > 0:  # short of `pull_to`
        yield from _pull_door(expert, name, predicate, pull_to)
        height = FINGER_BELOW + HANDLE_CLEAR  # over the door's top, from the handle
    yield from _push_door_open(expert, name, predicate, height)


def _pull_door(expert: Expert, name: str, predicate: str, pull_to: float) -> Actions:
    """Grasp the door's handle bar from above, the fingers closing across it along the
    panel, pull it along its arc to joint position `pull_to`, let go, and lift the hand
    until the fingertips clear the door's top by `HANDLE_CLEAR`."""
    cfg = expert.cfg
    entry = _entry(expert, name)
    theta0, sign = _door_frame(entry)
    theta1 = theta0 + (pull_to - float(entry["qpos"])) * sign
    radius, offset, z = _handle_grip(entry, theta0, sign)
    # The yaw chosen for the whole opening, so that the push from inside keeps it.
    arc = (joint_target(entry, predicate) - float(entry["qpos"])) * sign
    yaw0 = _door_yaw(expert, theta0, arc)
    top = float(entry["part_pos"][2] + entry["part_half"][2])
    grip = _door_point(entry, theta0, radius, offset, z)
    expert.gripper.target = OPEN
    yield from _go_above(expert, grip, yaw0, top + cfg.hover)
    yield from expert.move(grip, speed=cfg.careful_speed, phase="descend")
    yield from expert.grip(CLOSE, phase="close")
    yield from _follow_arc(expert, entry, theta0, theta1, radius, offset, z, yaw0,
                           PULL_SPEED, phase="pull-door")
    yield from expert.grip(OPEN, phase="release")
    yield from expert.move([*expert.cmd_pos[:2], top + FINGER_BELOW + HANDLE_CLEAR],
                           speed=cfg.careful_speed, phase="lift-clear")


def _handle_grip(entry: dict[str, Any], theta: float, sign: float) -> tuple[float, float, float]:
    """(radius from the hinge, offset out of the hinge line, height) of the grip site on a
    door's handle: on its bar (the part furthest out of the panel, `HANDLE_BAR` half
    thick), `HANDLE_GRIP_DEPTH` under the handle's top. The handle's box is in the door's
    frame, whose x axis runs along the panel and y across it (`_door_frame`)."""
    centre = np.asarray(entry["handle_pos"], dtype=np.float64)
    rel = centre[:2] - np.asarray(entry["anchor"], dtype=np.float64)[:2]
    half = np.asarray(entry["handle_half"], dtype=np.float64)
    outer = float(rel @ _door_out(theta, sign)) + float(half[1])
    radius = float(rel @ np.array([math.cos(theta), math.sin(theta)]))
    return radius, outer - HANDLE_BAR, float(centre[2] + half[2]) - HANDLE_GRIP_DEPTH


def _push_door_open(expert: Expert, name: str, predicate: str, height: float) -> Actions:
    """Push a door that is partly open the rest of the way: the side of the closed hand
    on the panel's inner face at `DOOR_RADIUS`, the hand turning with the door, to
    `joint_target` + `DOOR_OVERPUSH` (`_close_door` from the other side); the hand comes
    over at `height` above the door's top, and backs away towards the cabinet after."""
    entry = _entry(expert, name)
    theta0, sign = _door_frame(entry)
    theta1 = theta0 + (joint_target(entry, predicate) - float(entry["qpos"])) * sign
    theta1 += math.copysign(DOOR_OVERPUSH, theta1 - theta0)
    inner = _inner_face(entry, theta0, sign)
    top = float(entry["part_pos"][2] + entry["part_half"][2])
    yaw0 = _door_yaw(expert, theta0, theta1 - theta0)
    yield from _push_door(expert, entry, theta0, theta1, inner - DOOR_INNER_CONTACT,
                          inner - DOOR_INNER_STANDOFF, yaw0, top + height)


def _inner_face(entry: dict[str, Any], theta: float, sign: float) -> float:
    """Offset of a door panel's inner face out of its hinge line (about 0: the hinge runs
    along the inner edge), from the part's box (its y axis across the panel)."""
    rel = np.asarray(entry["part_pos"], dtype=np.float64)[:2] - np.asarray(entry["anchor"])[:2]
    return float(rel @ _door_out(theta, sign)) - float(entry["part_half"][1])


SKILLS.setdefault("libero_articulate", libero_articulate)
