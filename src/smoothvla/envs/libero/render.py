"""Camera images of a LIBERO scene, pixel for pixel what robosuite's renderer gives, faster.

LIBERO's scenes draw about 300k mesh triangles per image (the basket alone 66k, the room
60k), and with software rendering (Mesa llvmpipe) the cost is in the vertices, not the
pixels: a 16 px image costs as much as a 256 px one. MuJoCo draws every geom of the scene,
also those outside the camera's view. `render_image` leaves out the meshes whose bounding
sphere lies entirely outside the view frustum (the eye-in-hand camera sees about a third
of the scene), so no pixel changes: a culled mesh would have produced no fragment, and
the rest are drawn in the same order. It culls nothing when something could bring an
out-of-view mesh into the image (a reflective plane or box, a light that casts shadows)
or when the camera is orthographic.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

MARGIN = 1.02
"""Frustum half-angle tangents and bounding radii are enlarged by this factor: culling
is conservative (a mesh near the edge of the view is drawn)."""


def outside_frustum(centers: np.ndarray, radii: np.ndarray, cam_pos: np.ndarray,
                    forward: np.ndarray, up: np.ndarray, tan_half_x: float,
                    tan_half_y: float) -> np.ndarray:
    """(N,) True where a sphere lies entirely outside a perspective camera's view pyramid.

    centers (N, 3) and radii (N,) are bounding spheres in world coordinates; cam_pos (3,),
    forward (3,) and up (3,) unit vectors give the camera; tan_half_x / tan_half_y are the
    tangents of the horizontal / vertical half field of view. A sphere is outside when it
    is wholly behind the camera or wholly beyond one of the four side planes (the signed
    distance to a plane through the apex exceeds the radius). Near and far planes are not
    tested (a conservative answer: such spheres are kept)."""
    right = np.cross(forward, up)
    d = np.asarray(centers, dtype=np.float64) - cam_pos
    xf, xr, xu = d @ forward, d @ right, d @ up
    r = np.asarray(radii, dtype=np.float64)
    behind = xf + r < 0.0
    side_x = (np.abs(xr) - tan_half_x * xf) / math.sqrt(1.0 + tan_half_x ** 2) > r
    side_y = (np.abs(xu) - tan_half_y * xf) / math.sqrt(1.0 + tan_half_y ** 2) > r
    return behind | side_x | side_y


def _cullable(scn: mujoco.MjvScene) -> bool:
    """False when an out-of-view mesh could still show (reflections, shadows)."""
    if scn.camera[0].orthographic:
        return False
    if scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW]:
        if any(scn.lights[i].castshadow for i in range(scn.nlight)):
            return False
    if scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION]:
        for i in range(scn.ngeom):
            g = scn.geoms[i]
            if (g.type in (mujoco.mjtGeom.mjGEOM_PLANE, mujoco.mjtGeom.mjGEOM_BOX)
                    and not g.transparent and g.reflectance > 0):
                return False
    return True


def cull_meshes(scn: mujoco.MjvScene, model: mujoco.MjModel, aspect: float) -> int:
    """Stop MuJoCo drawing the mesh geoms of `scn` that lie outside its camera's view
    (their `dataid` set to -1, which `mjr_render` skips); returns how many. Call after
    `mjv_updateScene` (which rebuilds the geoms) and before `mjr_render`. `aspect` is the
    viewport's width / height."""
    if not _cullable(scn):
        return 0
    mesh, geom_obj = int(mujoco.mjtGeom.mjGEOM_MESH), int(mujoco.mjtObj.mjOBJ_GEOM)
    index, ids, centers = [], [], []
    for i in range(scn.ngeom):
        g = scn.geoms[i]
        if g.type == mesh and g.objtype == geom_obj and g.dataid >= 0:
            index.append(i)
            ids.append(g.objid)
            centers.append(g.pos)
    if not index:
        return 0
    cam = scn.camera[0]
    near = float(cam.frustum_near)
    half_y = max(abs(cam.frustum_top), abs(cam.frustum_bottom))
    half_x = (cam.frustum_width if cam.frustum_width > 0
              else 0.5 * aspect * (cam.frustum_top - cam.frustum_bottom))
    out = outside_frustum(
        np.array(centers), model.geom_rbound[ids] * MARGIN + 1e-4, np.array(cam.pos),
        np.array(cam.forward), np.array(cam.up),
        MARGIN * (abs(cam.frustum_center) + half_x) / near, MARGIN * half_y / near)
    for i in np.flatnonzero(out):
        scn.geoms[index[i]].dataid = -1
    return int(out.sum())


def render_image(context, model: mujoco.MjModel, data: mujoco.MjData, camera_id: int,
                 width: int, height: int, cull: bool = True) -> np.ndarray:
    """uint8 (height, width, 3) bottom-up image of fixed camera `camera_id`, drawn in
    robosuite's offscreen render `context` (`sim._render_context_offscreen`) the way its
    `render` + `read_pixels` do, with out-of-view meshes culled when `cull`.

    The context's GL context is made current first (robosuite does so only when it creates
    one): with several envs in a process, each draws in its own."""
    context.gl_ctx.make_current()
    if width > context.con.offWidth or height > context.con.offHeight:
        context.update_offscreen_size(max(width, model.vis.global_.offwidth),
                                      max(height, model.vis.global_.offheight))
    context.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
    context.cam.fixedcamid = camera_id
    scn = context.scn
    mujoco.mjv_updateScene(model, data, context.vopt, context.pert, context.cam,
                           mujoco.mjtCatBit.mjCAT_ALL, scn)
    if cull:
        cull_meshes(scn, model, width / height)
    viewport = mujoco.MjrRect(0, 0, width, height)
    mujoco.mjr_render(viewport, scn, context.con)
    image = np.empty((height, width, 3), dtype=np.uint8)
    mujoco.mjr_readPixels(image, None, viewport, context.con)
    return image
