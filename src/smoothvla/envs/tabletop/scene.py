"""MJCF of one tabletop scene: table, Panda, cameras, light and the task's objects.

Built procedurally from primitives (no meshes). Rendering is kept cheap for software GL:
no shadows, no multisampling, one directional light, plain colours and one small texture.
The table top is the plane z = 0; the robot base sits at `ROBOT_BASE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smoothvla.envs.tabletop.objects import (
    BASKET_WALL,
    CABINET_HALF,
    DRAWER_INNER,
    DRAWER_TRAVEL,
    ObjectDef,
)
from smoothvla.envs.tabletop.robot import actuators_xml, panda_xml

ROBOT_BASE = (-0.6, 0.0, 0.0)
# Where layouts place objects: reachable with the gripper pointing down.
WORKSPACE_X = (-0.25, 0.1)
WORKSPACE_Y = (-0.25, 0.25)
AGENTVIEW_POS = (0.4, 0.0, 0.75)
AGENTVIEW_TARGET = (-0.12, 0.0, 0.0)
CAMERAS = ("agentview", "eye_in_hand")
_WALL = 0.006  # drawer wall thickness


@dataclass(frozen=True)
class SceneStyle:
    """Appearance fixed at model-build time (perturbations may change it)."""

    table_rgb1: tuple[float, float, float] = (0.62, 0.5, 0.38)
    table_rgb2: tuple[float, float, float] = (0.58, 0.47, 0.36)
    table_texture: str = "checker"
    wall_rgb: tuple[float, float, float] = (0.72, 0.75, 0.78)
    floor_rgb: tuple[float, float, float] = (0.35, 0.35, 0.38)


def look_at_xyaxes(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MJCF camera `xyaxes` (6,) for a camera at pos looking at target, world z up."""
    f = np.asarray(target, float) - np.asarray(pos, float)
    f /= np.linalg.norm(f)
    x = np.cross(f, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return np.concatenate([x, y])


def _fmt(v) -> str:
    return " ".join(f"{float(a):.6g}" for a in np.atleast_1d(v))


def _geom_size(obj: ObjectDef) -> str:
    return _fmt(obj.size)


def object_xml(obj: ObjectDef) -> str:
    """The body of one object; free bodies get a freejoint, receptacles are fixed."""
    rgba = _fmt(obj.rgba)
    if obj.kind == "free":
        hs = obj.half_size
        extra = ""
        if obj.name.startswith("bowl") or obj.display in ("bowl", "black bowl", "cup"):
            # A darker inner disc on the top face makes a solid cylinder read as a bowl.
            r = obj.size[0] * 0.8
            extra = (f'<geom type="cylinder" size="{r:.4f} 0.0008" pos="0 0 {hs[2]:.4f}" '
                     f'rgba="0.03 0.03 0.03 1" contype="0" conaffinity="0" group="1"/>')
        return f"""
<body name="{obj.name}" pos="0 0 {hs[2]:.4f}">
  <freejoint name="{obj.name}_joint"/>
  <geom name="{obj.name}" type="{obj.shape}" size="{_geom_size(obj)}" rgba="{rgba}"
        mass="{obj.mass}" friction="1 0.005 0.0001"/>
  {extra}
</body>"""
    if obj.kind == "basket":
        hx, hy, hz = obj.size
        w = BASKET_WALL
        walls = [
            (f"0 0 {-hz + w / 2:.4f}", f"{hx + w} {hy + w} {w / 2}"),
            (f"{hx + w / 2:.4f} 0 0", f"{w / 2} {hy + w} {hz}"),
            (f"{-hx - w / 2:.4f} 0 0", f"{w / 2} {hy + w} {hz}"),
            (f"0 {hy + w / 2:.4f} 0", f"{hx + w} {w / 2} {hz}"),
            (f"0 {-hy - w / 2:.4f} 0", f"{hx + w} {w / 2} {hz}"),
        ]
        geoms = "\n".join(
            f'<geom name="{obj.name}_{i}" type="box" pos="{p}" size="{s}" rgba="{rgba}"/>'
            for i, (p, s) in enumerate(walls)
        )
        return f'<body name="{obj.name}" pos="0 0 {hz}">\n{geoms}\n</body>'
    if obj.kind == "cabinet":
        return cabinet_xml(obj)
    if obj.kind == "zone":
        return (f'<body name="{obj.name}" pos="0 0 0.0008"><geom name="{obj.name}" type="box" '
                f'size="{_geom_size(obj)}" rgba="{rgba}" contype="0" conaffinity="0"/></body>')
    hs = obj.half_size
    return (f'<body name="{obj.name}" pos="0 0 {hs[2]:.4f}"><geom name="{obj.name}" '
            f'type="{obj.shape}" size="{_geom_size(obj)}" rgba="{rgba}"/></body>')


def cabinet_xml(obj: ObjectDef) -> str:
    """A cabinet with one drawer that slides out towards -x (towards the robot)."""
    cx, cy, cz = CABINET_HALF
    ix, iy, iz = DRAWER_INNER
    w = _WALL
    rgba = _fmt(obj.rgba)
    dark = _fmt(np.clip(np.array(obj.rgba[:3]) * 0.7, 0, 1)) + " 1"
    # Drawer box: outer half (ix + w, iy + w, iz + w/2); it sits on the cabinet floor.
    dz = -cz + 2 * w + iz
    front_x = -(ix + w)
    cab = [
        (f"0 0 {cz - w / 2}", f"{cx} {cy} {w / 2}"),  # top
        (f"0 0 {-cz + w / 2}", f"{cx} {cy} {w / 2}"),  # floor
        (f"0 {cy - w / 2} 0", f"{cx} {w / 2} {cz}"),  # side
        (f"0 {-cy + w / 2} 0", f"{cx} {w / 2} {cz}"),  # side
        (f"{cx - w / 2} 0 0", f"{w / 2} {cy} {cz}"),  # back
    ]
    drawer = [
        (f"0 0 {-iz - w / 2}", f"{ix + w} {iy + w} {w / 2}"),  # bottom
        (f"{front_x + w / 2} 0 0", f"{w / 2} {iy + w} {iz}"),  # inner front
        (f"{ix + w / 2} 0 0", f"{w / 2} {iy + w} {iz}"),  # back
        (f"0 {iy + w / 2} 0", f"{ix + w} {w / 2} {iz}"),
        (f"0 {-iy - w / 2} 0", f"{ix + w} {w / 2} {iz}"),
        # Front panel, flush with the cabinet front, covering the whole opening.
        (f"{-cx + w / 2} 0 {-dz:.4f}", f"{w / 2} {cy - w} {cz - w}"),
    ]
    handle_x = -cx - 0.035
    lines = [f'<body name="{obj.name}" pos="0 0 {cz}">']
    lines += [f'<geom name="{obj.name}_{i}" type="box" pos="{p}" size="{s}" rgba="{rgba}"/>'
              for i, (p, s) in enumerate(cab)]
    lines.append(f'<body name="drawer" pos="0 0 {dz:.4f}">')
    lines.append(f'<joint name="drawer_joint" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL}"'
                 ' damping="8" armature="0.05" frictionloss="0.2"/>')
    lines.append('<inertial pos="0 0 0" mass="0.5" diaginertia="0.002 0.002 0.002"/>')
    lines += [f'<geom name="drawer_{i}" type="box" pos="{p}" size="{s}" rgba="{rgba}"/>'
              for i, (p, s) in enumerate(drawer)]
    # Handle: a vertical bar on two posts, 0.035 m in front of the panel, so that a gripper
    # pointing down with its default yaw (fingers closing along y) can grasp it.
    lines.append(f'<geom name="drawer_handle" type="box" pos="{handle_x:.4f} 0 0" '
                 f'size="0.006 0.006 0.022" rgba="{dark}"/>')
    for sz in (-0.017, 0.017):
        lines.append(f'<geom type="box" pos="{handle_x + 0.0175:.4f} 0 {sz}" '
                     f'size="0.0175 0.004 0.004" rgba="{dark}"/>')
    lines.append(f'<site name="drawer_handle" pos="{handle_x:.4f} 0 0" size="0.003" '
                 'rgba="0 0 0 0" group="4"/>')
    lines.append('<site name="drawer_inner" pos="0 0 0" size="0.003" rgba="0 0 0 0" '
                 'group="4"/>')
    lines.append("</body></body>")
    return "\n".join(lines)


def scene_xml(objects: list[ObjectDef], style: SceneStyle, image_size: int) -> str:
    """The full MJCF of a scene with these objects (placed at the origin until reset)."""
    body = "\n".join(object_xml(o) for o in objects)
    names = {o.name for o in objects}
    exclude = '<exclude body1="cabinet" body2="drawer"/>' if "cabinet" in names else ""
    for o in objects:
        if o.kind == "cabinet" and o.name != "cabinet":
            exclude = f'<exclude body1="{o.name}" body2="drawer"/>'
    agent = _fmt(look_at_xyaxes(np.array(AGENTVIEW_POS), np.array(AGENTVIEW_TARGET)))
    off = int(image_size)
    return f"""
<mujoco model="tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="5">
    <flag multiccd="enable"/>
  </option>
  <visual>
    <quality offsamples="0" shadowsize="0" numslices="12" numstacks="3" numquads="1"/>
    <global offwidth="{off}" offheight="{off}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="table_tex" type="2d" builtin="{style.table_texture}" width="64" height="64"
             rgb1="{_fmt(style.table_rgb1)}" rgb2="{_fmt(style.table_rgb2)}"/>
    <material name="table_mat" texture="table_tex" texrepeat="6 8" specular="0" shininess="0"/>
  </asset>
  <worldbody>
    <light name="key" directional="true" pos="0 0 2" dir="0.3 0.2 -1" diffuse="0.7 0.7 0.7"
           specular="0.05 0.05 0.05" castshadow="false"/>
    <camera name="agentview" pos="{_fmt(AGENTVIEW_POS)}" xyaxes="{agent}" fovy="50"/>
    <!-- Collide with an (invisible) plane, draw a box: llvmpipe draws planes as costly grids. -->
    <geom name="table" type="plane" size="0.45 0.6 0.01" group="3" rgba="0 0 0 0"/>
    <geom name="table_top" type="box" size="0.45 0.6 0.001" pos="0 0 -0.001" material="table_mat"
          contype="0" conaffinity="0"/>
    <geom name="table_body" type="box" pos="0 0 -0.4" size="0.45 0.6 0.399"
          rgba="{_fmt(style.table_rgb2)} 1" contype="0" conaffinity="0"/>
    <geom name="pedestal" type="box" pos="{ROBOT_BASE[0]} 0 -0.4" size="0.12 0.12 0.4"
          rgba="0.3 0.3 0.32 1" contype="0" conaffinity="0"/>
    <geom name="floor" type="box" pos="0 0 -0.81" size="3 3 0.01" rgba="{_fmt(style.floor_rgb)} 1"
          contype="0" conaffinity="0"/>
    <geom name="wall_back" type="box" pos="-1.2 0 0.2" size="0.01 3 1.2"
          rgba="{_fmt(style.wall_rgb)} 1" contype="0" conaffinity="0"/>
    <geom name="wall_left" type="box" pos="0 1.4 0.2" size="3 0.01 1.2"
          rgba="{_fmt(style.wall_rgb)} 1" contype="0" conaffinity="0"/>
    <geom name="wall_right" type="box" pos="0 -1.4 0.2" size="3 0.01 1.2"
          rgba="{_fmt(style.wall_rgb)} 1" contype="0" conaffinity="0"/>
    {panda_xml(ROBOT_BASE)}
    {body}
  </worldbody>
  <contact>{exclude}</contact>
  <actuator>{actuators_xml()}</actuator>
</mujoco>"""
