"""Geometry the skills plan with: object extents, obstacles, hand clearance, grasp yaws.

Objects are boxes (`half_size` in their body frame, `quat` w x y z). Obstacle tests use
world-aligned bounding rectangles of those boxes and a rectangle for the hand seen from
above; heights decide whether an obstacle matters (is its top above the fingertips, above
the hand's lowest point?). The hand dimensions are the Panda hand's (`ExpertConfig`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from smoothvla.experts.motion import down_quat
from smoothvla.geometry import quat_to_matrix, wrap_angle

if TYPE_CHECKING:
    from smoothvla.experts.expert import Expert


def _top(entry: dict[str, Any]) -> float:
    return float(entry["pos"][2] + _vertical_extent(entry))


def _vertical_extent(entry: dict[str, Any]) -> float:
    """Half height of an object's box in the world frame (boxes may be rotated)."""
    rot = np.abs(quat_to_matrix(entry["quat"]))
    return float(rot[2] @ np.asarray(entry["half_size"], dtype=np.float64))


def _horizontal_extent(entry: dict[str, Any], direction: np.ndarray) -> float:
    """Half extent of an object's box along a horizontal unit `direction`."""
    rot = quat_to_matrix(entry["quat"])
    d = np.array([direction[0], direction[1], 0.0])
    return float(np.abs(rot.T @ d) @ np.asarray(entry["half_size"], dtype=np.float64))


def grasp_yaws(entry: dict[str, Any], reference: np.ndarray, current_yaw: float) -> list[float]:
    """Yaws that close the fingers across the object's narrower horizontal side, nearest to
    `current_yaw` first.

    The fingers close along the gripper's y axis (its direction at yaw 0 is read from
    `reference`). Every horizontal box axis whose half size is within 2 mm of the narrowest
    is a candidate, each with its half-turn twin, so square and round objects get four.
    """
    rot = quat_to_matrix(entry["quat"])
    half = np.asarray(entry["half_size"], dtype=np.float64)
    # Horizontal box axes: the two body axes with the smallest vertical component.
    axes = sorted(range(3), key=lambda i: abs(rot[2, i]))[:2]
    narrowest = min(half[i] for i in axes)
    finger0 = quat_to_matrix(reference)[:, 1]
    offset = math.atan2(finger0[1], finger0[0])
    candidates = []
    for i in axes:
        if half[i] - narrowest < 0.002:
            base = math.atan2(rot[1, i], rot[0, i]) - offset
            candidates += [wrap_angle(base + k * math.pi) for k in (0, 1)]
    return sorted(candidates, key=lambda y: abs(wrap_angle(y - current_yaw)))


def grasp_yaw(entry: dict[str, Any], reference: np.ndarray, current_yaw: float) -> float:
    """The candidate of `grasp_yaws` nearest to `current_yaw`."""
    return grasp_yaws(entry, reference, current_yaw)[0]


def _obstacles(expert: Expert, exclude: tuple[str, ...]
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """(centre xy, rotation (2, 2), half extents xy (world-aligned), top z) of every object
    not excluded, plus the front of every drawer (named "<articulation>/front").

    Flat markers (tops under 5 mm) are left out: nothing collides with them. A drawer's
    front (its handle and front panel, which stick out of the cabinet when it is open) is
    not an object of the state; it is approximated by a box from the handle to the drawer's
    inner volume, `drawer_front_pad` wider than that volume and `drawer_front_height` above
    the handle.
    """
    cfg = expert.cfg
    out = []
    objects = expert.state["objects"]
    for name, o in objects.items():
        if name in exclude or _top(o) < 0.005:
            continue
        rot = quat_to_matrix(o["quat"])
        out.append((np.asarray(o["pos"][:2], dtype=np.float64), rot[:2, :2],
                    np.abs(rot[:2, :]) @ np.asarray(o["half_size"], dtype=np.float64), _top(o)))
    for name, art in expert.state.get("articulations", {}).items():
        if f"{name}/front" in exclude:
            continue
        handle = np.asarray(art["handle_pos"], dtype=np.float64)
        inner = objects.get(name)
        axis = np.asarray(art["axis"], dtype=np.float64)[:2]
        axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
        across = np.array([-axis[1], axis[0]])
        width = (float(np.asarray(inner["half_size"])[1]) if inner is not None else 0.05) \
            + cfg.drawer_front_pad
        far = np.asarray(inner["pos"][:2], dtype=np.float64) if inner is not None else handle[:2]
        ends = [handle[:2] + axis * 0.012, handle[:2] - axis * 0.012, far]
        corners = np.array([e + sign * width * across for e in ends for sign in (-1, 1)])
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        out.append(((lo + hi) / 2, np.eye(2), (hi - lo) / 2,
                    float(handle[2]) + cfg.drawer_front_height))
    return out


def _footprint_distance(obstacle, xy: np.ndarray) -> float:
    """Distance (m) from `xy` to an obstacle's axis-aligned world footprint (0 inside)."""
    centre, _, half, _ = obstacle
    gap = np.maximum(np.abs(xy - centre) - half, 0.0)
    return float(np.linalg.norm(gap))


def _path_top(expert: Expert, start: np.ndarray, goal: np.ndarray, exclude: tuple[str, ...],
              margin: float = 0.06) -> float:
    """Highest top among obstacles within `margin` of the straight xy path start -> goal."""
    n = max(2, int(np.linalg.norm(goal[:2] - start[:2]) / 0.01) + 1)
    samples = np.linspace(start[:2], goal[:2], n)
    top = 0.0
    for obstacle in _obstacles(expert, exclude):
        if min(_footprint_distance(obstacle, xy) for xy in samples) < margin:
            top = max(top, obstacle[3])
    return top


def _drop_spot(expert: Expert, dest_name: str, dest: dict[str, Any], obj_name: str,
               obj: dict[str, Any]) -> np.ndarray:
    """Where the held object's centre goes inside a container.

    Candidates are a grid over the container's inner footprint shrunk by the object's half
    size, minus points under anything taller than the container (the cabinet over a half-open
    drawer). The winner is the candidate farthest from the objects already inside, with a
    mild preference for the middle; the centre when the container is empty and uncovered.
    """
    centre = np.asarray(dest["pos"][:2], dtype=np.float64)
    rot = quat_to_matrix(dest["quat"])[:2, :2]
    half = np.asarray(dest["half_size"][:2], dtype=np.float64)
    obj_half = float(np.max(obj["half_size"][:2]))
    room = np.maximum(half - obj_half - 0.012, 0.0)
    inside = []
    for name, o in expert.state["objects"].items():
        if name in (dest_name, obj_name):
            continue
        local = rot.T @ (np.asarray(o["pos"][:2]) - centre)
        if np.all(np.abs(local) <= half):
            inside.append(local)
    grid = np.stack(np.meshgrid(np.linspace(-room[0], room[0], 9),
                                np.linspace(-room[1], room[1], 9)), -1).reshape(-1, 2)
    world = centre + grid @ rot.T
    covered = np.zeros(len(grid), dtype=bool)
    for ob_centre, _, ob_half, top in _obstacles(expert, (dest_name, obj_name,
                                                          f"{dest_name}/front")):
        if top > _top(dest) + 0.005:
            covered |= np.all(np.abs(world - ob_centre) < ob_half + obj_half + 0.005, axis=1)
    if covered.all():
        covered[:] = False
    score = -0.1 * np.linalg.norm(grid, axis=1)
    if inside:
        score += np.min(np.linalg.norm(grid[:, None] - np.array(inside)[None], axis=-1), axis=1)
    score[covered] = -np.inf
    return world[int(np.argmax(score))]


def _rect_overlap(centre: np.ndarray, axes: np.ndarray, half: np.ndarray,
                  box_centre: np.ndarray, box_half: np.ndarray) -> bool:
    """Whether a rotated rectangle (centre, unit axes as rows (2, 2), half extents) overlaps
    a world-aligned one (separating-axis test)."""
    delta = box_centre - centre
    for axis in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), axes[0], axes[1]):
        r_rect = float(np.abs(axes @ axis) @ half)
        r_box = float(np.abs(axis) @ box_half)
        if abs(float(delta @ axis)) >= r_rect + r_box:
            return False
    return True


def _hand_clear(expert: Expert, tcp: np.ndarray, yaw: float, exclude: tuple[str, ...],
                opening: float = 0.0, margin: float = 0.006) -> bool:
    """Whether the finger pads and the hand body, with the fingertips at `tcp` (3,) and the
    gripper at `yaw`, stay `margin` away from every non-excluded object's bounding box."""
    cfg = expert.cfg
    rot = quat_to_matrix(down_quat(yaw, expert._reference))
    axes = np.stack([rot[:2, 0], rot[:2, 1]])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    pads = np.array([0.01, opening / 2 + 0.013]) + margin
    hand = np.asarray(cfg.hand_half, dtype=np.float64) + margin
    for centre, _, half, top in _obstacles(expert, exclude):
        if top > tcp[2] - 0.0125 and _rect_overlap(tcp[:2], axes, pads, centre, half):
            return False
        if top > tcp[2] + cfg.hand_height and _rect_overlap(tcp[:2], axes, hand, centre, half):
            return False
    return True
