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

from smoothvla.experts.motion import matrix_to_quat

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
