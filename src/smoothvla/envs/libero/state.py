"""Privileged state of a LIBERO scene for the scripted experts (`experts/skills.py` contract).

Every LIBERO object is a mesh; the experts reason about boxes. An object's box is the
bounding box of its collision geoms expressed in the object's root-body frame, measured
once per reset (objects are rigid), so `pos` (box centre in the world), `quat` (root-body
orientation, w x y z) and `half_size` follow the object as it moves and tips.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from smoothvla.geometry import matrix_to_quat

# Unit cube corners, for the bounding box of a geom's own box (`geom_aabb`).
_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


@dataclass(frozen=True)
class BodyBox:
    """Box of one object in its root body's frame: centre (3,) and half extents (3,)."""

    body_id: int
    center: np.ndarray
    half_size: np.ndarray

    def world(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """(centre (3,), quaternion (4,) w x y z) of the box in the world."""
        rot = data.xmat[self.body_id].reshape(3, 3)
        return data.xpos[self.body_id] + rot @ self.center, matrix_to_quat(rot)


def body_box(model: mujoco.MjModel, data: mujoco.MjData, body_id: int,
             geom_ids: list[int]) -> BodyBox:
    """Bounding box of `geom_ids` in the frame of body `body_id` (positions from `data`)."""
    if not geom_ids:
        raise ValueError(f"body {body_id} has no geoms to measure")
    rot_b = data.xmat[body_id].reshape(3, 3)
    pos_b = data.xpos[body_id]
    points = []
    for g in geom_ids:
        center, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
        local = center + _CORNERS * half  # (8, 3) in the geom frame
        world = data.geom_xpos[g] + local @ data.geom_xmat[g].reshape(3, 3).T
        points.append((world - pos_b) @ rot_b)
    pts = np.concatenate(points)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return BodyBox(body_id, (lo + hi) / 2, (hi - lo) / 2)


def subtree_geoms(model: mujoco.MjModel, root_body: int, collision_only: bool = True) -> list[int]:
    """Geoms attached to `root_body` or any of its descendants."""
    out = []
    for g in range(model.ngeom):
        b = int(model.geom_bodyid[g])
        while b not in (root_body, 0):
            b = int(model.body_parentid[b])
        if b != root_body:
            continue
        if collision_only and model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0:
            continue
        out.append(g)
    return out


# LIBERO's articulated-object checks (`libero/envs/objects/articulated_objects.py`): each
# predicate compares one joint position with an end of the object's default range.
PREDICATE_RANGES = {"open": ("default_open_ranges", "<", max),
                    "close": ("default_close_ranges", ">", min),
                    "turnon": ("default_turnon_ranges", ">=", min),
                    "turnoff": ("default_turnoff_ranges", "<", max)}


def predicate_thresholds(properties: dict) -> dict[str, tuple[str, float]]:
    """{predicate: (comparison, value)} of a LIBERO articulated object, read from its
    `object_properties["articulation"]` the way its is_open / is_close / turn_on / turn_off
    read them (e.g. a cabinet drawer is open below -0.14 m and closed above 0.0 m)."""
    out = {}
    for predicate, (key, op, pick) in PREDICATE_RANGES.items():
        if properties.get(key):  # empty for the checks an object does not have
            out[predicate] = (op, float(pick(properties[key])))
    return out


@dataclass(frozen=True)
class Articulation:
    """One jointed part a goal predicate checks: a drawer (slide joint), a door or a knob
    (hinge), with its handle's box and the whole part's box in the part's body frame."""

    kind: str
    joint_id: int
    qpos_adr: int
    thresholds: dict
    limits: tuple[float, float]
    part: BodyBox
    handle: BodyBox

    def entry(self, data: mujoco.MjData) -> dict:
        """Privileged-state entry: joint position, LIBERO's thresholds, joint limits, joint
        anchor and axis (world), handle and part boxes (centre, w x y z quaternion, half size)."""
        handle_pos, handle_quat = self.handle.world(data)
        part_pos, part_quat = self.part.world(data)
        return {"kind": self.kind, "qpos": float(data.qpos[self.qpos_adr]),
                "thresholds": dict(self.thresholds), "limits": self.limits,
                "anchor": data.xanchor[self.joint_id].copy(),
                "axis": data.xaxis[self.joint_id].copy(),
                "handle_pos": handle_pos, "handle_quat": handle_quat,
                "handle_half": self.handle.half_size.copy(),
                "part_pos": part_pos, "part_quat": part_quat,
                "part_half": self.part.half_size.copy()}


def measure_articulation(model: mujoco.MjModel, data: mujoco.MjData, joint: str,
                         properties: dict) -> Articulation:
    """The `Articulation` of a named joint; its handle is found from the part's geoms:
    a drawer's is the geom that sticks out furthest in the opening direction, a knob's the
    raised bar on top, a door's the geoms furthest from the hinge."""
    j = model.joint(joint).id
    body = int(model.jnt_bodyid[j])
    geoms = subtree_geoms(model, body)
    thresholds = predicate_thresholds(properties)
    boxes = {g: body_box(model, data, 0, [g]) for g in geoms}  # world-aligned
    if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
        kind = "drawer"
        sign = -1.0 if "open" in thresholds and thresholds["open"][0] == "<" else 1.0
        out = sign * data.xaxis[j]
        reach = {g: float(np.abs(out) @ b.half_size + out @ b.center) for g, b in boxes.items()}
        handle = [g for g in geoms if reach[g] > max(reach.values()) - 0.005]
    elif "turnon" in thresholds:
        kind = "knob"
        tops = {g: float(b.center[2] + b.half_size[2]) for g, b in boxes.items()}
        handle = [g for g in geoms if tops[g] > max(tops.values()) - 0.02]
    else:
        kind = "door"
        anchor, axis = data.xanchor[j], data.xaxis[j]
        dist = {}
        for g, b in boxes.items():
            rel = b.center - anchor
            dist[g] = float(np.linalg.norm(rel - (rel @ axis) * axis))
        handle = [g for g in geoms if dist[g] > max(dist.values()) - 0.01]
    limits = (float(model.jnt_range[j, 0]), float(model.jnt_range[j, 1]))
    return Articulation(kind, j, int(model.jnt_qposadr[j]), thresholds, limits,
                        body_box(model, data, body, geoms), body_box(model, data, body, handle))
