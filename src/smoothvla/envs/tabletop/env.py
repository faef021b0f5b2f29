"""`TabletopEnv`: one tabletop task as a Gymnasium-style `TaskEnv` (see envs/base.py).

Control: 20 Hz, 7-D action in [-1, 1] = (ee position delta * 0.05 m, world-frame
axis-angle rotation delta * 0.5 rad, gripper -1 open .. +1 close). Each control step moves a
target pose, solves damped-least-squares IK once (robot.py) and runs 25 physics steps of
2 ms while the joint servo targets ramp linearly to the new solution.

Besides the TaskEnv interface it offers what the scripted experts use (`plan`,
`privileged_state`, `action_scale`) and `set_object_pose` for tests and perturbations.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import time
import weakref
from typing import Any

import mujoco
import numpy as np

from smoothvla.envs.base import TaskSpec, check_action
from smoothvla.envs.tabletop import perturbations as pert
from smoothvla.envs.tabletop.objects import (
    DRAWER_INNER,
    DRAWER_OPEN,
)
from smoothvla.envs.tabletop.robot import (
    ACTION_SCALE,
    FINGER_NAMES,
    FINGER_OPEN,
    HOME_QPOS,
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_UPPER,
    KP,
    KV,
    DiffIK,
    mat_to_axis_angle,
)
from smoothvla.envs.tabletop.scene import (
    CAMERAS,
    ROBOT_BASE,
    WORKSPACE_X,
    WORKSPACE_Y,
    scene_xml,
)
from smoothvla.envs.tabletop.tasks import Placement, TaskDef, sample_layout
from smoothvla.errors import UserError
from smoothvla.geometry import yaw_quat

CONTROL_DT = 0.05
PHYSICS_DT = 0.002
N_SUBSTEPS = 25
N_RAMP = 5  # servo targets ramp in 5 pieces of 5 physics steps
# Target-pose clamp: keeps IK inside the reachable box and the fingertips above the table.
TARGET_LOW = np.array([-0.45, -0.45, 0.012])
TARGET_HIGH = np.array([0.35, 0.45, 0.6])
REANCHOR_POS = 0.03  # m: beyond this lag the target restarts from the measured pose
REANCHOR_ROT = 0.6  # rad (a full-scale rotation command is 0.5 rad per step)
OPEN_SUCCESS = 0.09  # drawer qpos counted as open
CLOSED_SUCCESS = 0.015
PUSH_TOL = 0.04
PLACE_Z_TOL = 0.015
REPOSITION_STEP = 20
_KV_OVER_KP = KV / KP
_RAMP = np.arange(1, N_RAMP + 1) / N_RAMP
_RAMP_COL = _RAMP[:, None]
_PER = N_SUBSTEPS // N_RAMP
_IDENTITY_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
_POS_SCALE = ACTION_SCALE["pos"]
_ROT_SCALE = ACTION_SCALE["rot"]


@dataclasses.dataclass(frozen=True)
class BoxSpace:
    """A minimal Gymnasium-like Box: bounds, shape, dtype and `sample(rng)`."""

    low: np.ndarray
    high: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.low.shape

    @property
    def dtype(self) -> np.dtype:
        return self.low.dtype

    def sample(self, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng or np.random.default_rng()
        return rng.uniform(self.low, self.high).astype(self.low.dtype)


# Renderers must be freed before MuJoCo's own exit hook tears GL down; atexit runs hooks in
# reverse order, so ours is registered after the first renderer exists.
_LIVE_ENVS: weakref.WeakSet[TabletopEnv] = weakref.WeakSet()
_EXIT_HOOK = []


def _close_all() -> None:
    for env in list(_LIVE_ENVS):
        env.close()


class TabletopEnv:
    """One task of the tabletop suites.

    Args:
        spec: the task's TaskSpec (from the registry).
        task: its TaskDef (scene, stages, layouts).
        cameras: cameras to render, a subset of ("agentview", "eye_in_hand"); () = state only.
        image_size: square image side in pixels.
        perturbation: None, a PerturbationSpec, "kind@strength", or a sequence of those.
    """

    def __init__(self, spec: TaskSpec, task: TaskDef, *, cameras: Any = CAMERAS,
                 image_size: int = 128, perturbation: Any = None) -> None:
        cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras or ())
        for cam in cameras:
            if cam not in CAMERAS:
                raise UserError(f"unknown camera {cam!r}; known: {', '.join(CAMERAS)}")
        if int(image_size) < 8:
            raise UserError(f"image_size must be >= 8, got {image_size}")
        self.cameras = cameras
        self.render_s = 0.0  # seconds spent rendering camera images (rollout time split)
        self.image_size = int(image_size)
        self.perturbations = pert.as_specs(perturbation)
        self._task_def = task
        self.control_dt = CONTROL_DT
        self.max_steps = spec.max_steps
        self.action_scale = dict(ACTION_SCALE)
        self.action_space = BoxSpace(-np.ones(7, np.float32), np.ones(7, np.float32))

        self._scene = pert.scene_objects(task, self.perturbations)
        self._objects = self._scene.objects
        instruction = pert.instruction_for(task.instruction, self._scene, self.perturbations)
        self.task = dataclasses.replace(spec, instruction=instruction)
        self.model = mujoco.MjModel.from_xml_string(
            scene_xml(list(self._objects.values()), pert.scene_style(self.perturbations),
                      self.image_size))
        self.data = mujoco.MjData(self.model)
        self._index_model()
        self._ik = DiffIK(ROBOT_BASE)
        self._renderer = self._make_renderer() if cameras else None
        if self._renderer is not None:
            _LIVE_ENVS.add(self)
            if not _EXIT_HOOK:
                atexit.register(_close_all)
                _EXIT_HOOK.append(True)
        self._plan: list[dict] = []
        self._steps = 0
        self._episode_rng = np.random.default_rng(0)
        self._reset_called = False
        self._contact_epoch = 0
        self._contact_cache: tuple = (None, (set(), set()))

    # ------------------------------------------------------------------ build

    def _make_renderer(self) -> mujoco.Renderer:
        try:
            return mujoco.Renderer(self.model, self.image_size, self.image_size)
        except Exception as err:
            raise RuntimeError(
                "could not create a MuJoCo offscreen renderer: set MUJOCO_GL=egl (or osmesa) "
                "before mujoco is first imported (importing smoothvla.envs.tabletop first does "
                f"this), or pass cameras=() for state-only envs. Cause: {err}") from err

    def _index_model(self) -> None:
        m = self.model
        arm = [int(m.jnt_qposadr[m.joint(n).id]) for n in JOINT_NAMES]
        fingers = [int(m.jnt_qposadr[m.joint(n).id]) for n in FINGER_NAMES]
        # The arm is the first body tree: its joints and actuators come first, in order.
        if arm + fingers != list(range(9)):
            raise RuntimeError(f"unexpected Panda joint layout {arm + fingers}")
        self._arm_qadr = slice(0, 7)
        self._finger_qadr = slice(7, 9)
        self._site = m.site("grasp_site").id
        self._pads = (m.geom("left_pad").id, m.geom("right_pad").id)
        self._body = {name: m.body(name).id for name in self._objects}
        self._free_qadr = {
            name: m.jnt_qposadr[m.body_jntadr[bid]]
            for name, bid in self._body.items() if m.body_jntnum[bid] == 1
            and m.jnt_type[m.body_jntadr[bid]] == mujoco.mjtJoint.mjJNT_FREE
        }
        self._free_dadr = {name: m.jnt_dofadr[m.body_jntadr[self._body[name]]]
                           for name in self._free_qadr}
        self._has_drawer = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "drawer") >= 0
        if self._has_drawer:
            self._drawer_body = m.body("drawer").id
            self._drawer_qadr = m.jnt_qposadr[m.joint("drawer_joint").id]
            self._drawer_handle = m.site("drawer_handle").id
            self._drawer_inner = m.site("drawer_inner").id
        self._cam_ids = {c: m.camera(c).id for c in CAMERAS}
        self._visual_defaults = pert.VisualDefaults.of(m, self._cam_ids["agentview"])
        self._static_z = {name: float(m.body_pos[bid][2]) for name, bid in self._body.items()}
        # Per-object constants (ObjectDef's properties build new arrays on every call).
        self._half = {name: obj.half_size for name, obj in self._objects.items()}
        self._inner = {name: (np.array(obj.size[:2]) if obj.kind == "basket"
                              else self._half[name][:2]) for name, obj in self._objects.items()}
        # Persistent views into the simulation state (MjData buffers never move), so that
        # the per-step code does not rebuild them from attribute lookups.
        d = self.data
        self._ctrl_arm = d.ctrl[:7]
        self._ctrl_fingers = d.ctrl[7:9]
        self._qpos_arm = d.qpos[self._arm_qadr]
        self._qpos_fingers = d.qpos[self._finger_qadr]
        self._ee_pos = d.site_xpos[self._site]
        self._ee_xmat = d.site_xmat[self._site]
        self._ee_mat = self._ee_xmat.reshape(3, 3)
        self._image_noise = pert.find(self.perturbations, "image_noise")
        self._dquat = np.empty(4)  # scratch: the commanded rotation as quat and matrix
        self._dmat9 = np.empty(9)
        self._dmat = self._dmat9.reshape(3, 3)
        self._rot = np.empty(3)

    # ------------------------------------------------------------------ episode

    def reset(self, seed: int | None = None, init_id: int = 0) -> tuple[dict, dict]:
        """Start an episode from fixed layout `init_id`; `seed` drives perturbation noise."""
        m, d = self.model, self.data
        seed = 0 if seed is None else int(seed)
        self._episode_rng = np.random.default_rng([seed, int(init_id), 7919])
        mujoco.mj_resetData(m, d)
        layout = sample_layout(self._scene.layout_task, int(init_id))
        layout = {self._scene.name(k): v for k, v in layout.items()}
        layout = pert.perturb_layout(layout, self._objects, self.perturbations, seed, init_id)
        self._place(layout)
        if self._has_drawer:
            d.qpos[self._drawer_qadr] = DRAWER_OPEN if self._task_def.drawer_open else 0.0
        q0 = HOME_QPOS.copy()
        spec = pert.find(self.perturbations, "robot_init")
        if spec:
            q0 += spec.rng(seed, init_id).uniform(-0.35, 0.35, 7) * spec.strength
            q0 = np.clip(q0, JOINT_LOWER + 0.05, JOINT_UPPER - 0.05)
        d.qpos[self._arm_qadr] = q0
        d.qpos[self._finger_qadr] = FINGER_OPEN
        d.ctrl[:7] = q0
        d.ctrl[7:9] = FINGER_OPEN
        pert.apply_visuals(m, self._cam_ids["agentview"], self._visual_defaults,
                           self.perturbations, seed, init_id)
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=10)  # let objects settle onto their supports
        mujoco.mj_forward(m, d)  # positions, contacts and sites of the current state
        self._q_cmd = d.qpos[self._arm_qadr].copy()
        self._target_pos = d.site_xpos[self._site].copy()
        self._target_mat = d.site_xmat[self._site].reshape(3, 3).copy()
        self._plan = self._resolve_plan()
        self._steps = 0
        self._contact_epoch += 1
        self._reset_called = True
        self._reposition = pert.find(self.perturbations, "reposition")
        obs = self._observation()
        info = self._info()
        return obs, info

    def step(self, action: Any, render: bool = True) -> tuple[dict, float, bool, bool, dict]:
        """Apply one 7-D action for one control step (0.05 s). `render=False` leaves the
        images out (`obs["rgb"] == {}`) unless image noise is on: its draws share the
        episode's generator with the reposition perturbation, so they are always made."""
        if not self._reset_called:
            raise RuntimeError("call reset() before step()")
        a = check_action(action)
        # np.minimum/np.maximum: np.clip's Python wrapper costs ~10 us, twice per step
        a = np.maximum(a, -1.0)
        a = np.minimum(a, 1.0, out=a)
        m, d = self.model, self.data
        pos = self._ee_pos
        mat = self._ee_mat
        # The target accumulates commanded deltas (no drift from tracking lag) unless the arm
        # is blocked; then it restarts from the measured pose to avoid wind-up.
        # rot = mat_to_axis_angle(self._target_mat @ mat.T) on scratch buffers; math.sqrt(
        # v.dot(v)) is np.linalg.norm(v) for a float vector (same dot, same sqrt), minus its
        # Python overhead.
        mujoco.mju_mat2Quat(self._dquat, (self._target_mat @ mat.T).reshape(-1))
        rot = self._rot
        mujoco.mju_quat2Vel(rot, self._dquat, 1.0)
        lag = self._target_pos - pos
        if math.sqrt(lag.dot(lag)) > REANCHOR_POS or math.sqrt(rot.dot(rot)) > REANCHOR_ROT:
            self._target_pos = pos.copy()
            self._target_mat = mat.copy()
            self._q_cmd = self._qpos_arm.copy()
        target = self._target_pos + a[:3] * _POS_SCALE
        self._target_pos = np.minimum(np.maximum(target, TARGET_LOW, out=target), TARGET_HIGH,
                                      out=target)
        # = axis_angle_to_mat(a[3:6] * _ROT_SCALE) @ self._target_mat, on scratch buffers
        rotvec = a[3:6] * _ROT_SCALE
        angle = math.sqrt(rotvec.dot(rotvec))
        quat = self._dquat
        if angle > 1e-12:
            mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
        else:
            quat[:] = _IDENTITY_QUAT
        mujoco.mju_quat2Mat(self._dmat9, quat)
        self._target_mat = self._dmat @ self._target_mat
        q_prev = self._q_cmd
        self._q_cmd = self._ik.solve(q_prev, self._target_pos, self._target_mat)
        self._ctrl_fingers[:] = FINGER_OPEN - (float(a[6]) + 1.0) / 2.0 * (FINGER_OPEN + 0.01)
        dq = self._q_cmd - q_prev
        # Servo targets ramp linearly to the IK solution, plus a velocity feed-forward: the
        # servo's damping term -kv*qdot would otherwise make the arm lag kv/kp behind.
        ramp = q_prev + _RAMP_COL * dq + _KV_OVER_KP * dq / CONTROL_DT
        # Each ramp piece is step2 (forces, integration with the new targets) + (per - 1)
        # full steps + step1 (positions, contacts), so that the state ends with kinematics
        # and contacts consistent with the final state (plain mj_step would leave them one
        # physics step stale). A piece's closing step1 and the next piece's step2 are one
        # mj_step with that piece's targets (ctrl is read only by step2), so the same
        # sequence runs as: step2, the rest of piece 0, one mj_step(per) per later piece,
        # and a final step1 - identical results with 7 calls into MuJoCo instead of 15.
        ctrl = self._ctrl_arm
        ctrl[:] = ramp[0]
        mujoco.mj_step2(m, d)
        if _PER > 1:
            mujoco.mj_step(m, d, nstep=_PER - 1)
        for k in range(1, N_RAMP):
            ctrl[:] = ramp[k]
            mujoco.mj_step(m, d, nstep=_PER)
        mujoco.mj_step1(m, d)
        self._steps += 1
        if self._reposition and self._steps == REPOSITION_STEP:
            self._do_reposition()
        obs = self._observation(render or bool(self._image_noise))
        info = self._info()
        terminated = bool(info["success"])
        truncated = (not terminated) and self._steps >= self.max_steps
        return obs, float(terminated), terminated, truncated, info

    def close(self) -> None:
        """Free the renderer (safe to call twice)."""
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is not None:
            renderer.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: GL may be gone
            pass

    # ------------------------------------------------------------------ perturbations

    def _do_reposition(self) -> None:
        """Mid-episode reposition: move the first task object unless it is held."""
        stage_objs = [s["object"] for s in self._plan if "object" in s]
        if not stage_objs:
            return
        name = stage_objs[0]
        if self._held(name):
            return
        pos = self.data.xpos[self._body[name]].copy()
        r = self._objects[name].footprint
        others = [(self.data.xpos[b][:2], self._objects[n].footprint)
                  for n, b in self._body.items() if n != name and self._objects[n].kind != "zone"]
        dist = 0.04 + 0.08 * self._reposition.strength
        rng = self._reposition.rng(int(self._episode_rng.integers(1 << 30)))
        for _ in range(50):
            ang = rng.uniform(0, 2 * np.pi)
            xy = pos[:2] + dist * np.array([np.cos(ang), np.sin(ang)])
            inside = (WORKSPACE_X[0] <= xy[0] <= WORKSPACE_X[1]
                      and WORKSPACE_Y[0] <= xy[1] <= WORKSPACE_Y[1])
            if inside and all(np.linalg.norm(xy - o) >= r + ro + 0.01 for o, ro in others):
                # Onto the table (it may have stood on a box), keeping its orientation.
                z = self._world_half(name)[2] + 1e-4
                self.set_object_pose(name, np.array([xy[0], xy[1], z]))
                return

    # ------------------------------------------------------------------ state

    def _place(self, layout: dict[str, Placement]) -> None:
        m, d = self.model, self.data
        for name, pl in layout.items():
            obj = self._objects[name]
            bid = self._body[name]
            if name in self._free_qadr:
                adr = self._free_qadr[name]
                d.qpos[adr:adr + 3] = (pl.x, pl.y, pl.support_z + obj.half_size[2] + 1e-4)
                d.qpos[adr + 3:adr + 7] = yaw_quat(pl.yaw)
            else:
                m.body_pos[bid] = (pl.x, pl.y, self._static_z[name] + pl.support_z)
                m.body_quat[bid] = yaw_quat(pl.yaw)

    def set_object_pose(self, name: str, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Teleport a free object (pos (3,), quat (4,) w x y z), zeroing its velocity."""
        if name not in self._free_qadr:
            raise ValueError(f"{name!r} is not a free object of this scene; "
                             f"free objects: {', '.join(self._free_qadr)}")
        adr, dadr = self._free_qadr[name], self._free_dadr[name]
        self.data.qpos[adr:adr + 3] = pos
        if quat is not None:
            self.data.qpos[adr + 3:adr + 7] = np.asarray(quat) / np.linalg.norm(quat)
        self.data.qvel[dadr:dadr + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._contact_epoch += 1

    def set_articulation(self, name: str, qpos: float) -> None:
        """Set the drawer's slide position (metres), for tests."""
        if name != "drawer" or not self._has_drawer:
            raise ValueError(f"no articulation {name!r} in this scene")
        self.data.qpos[self._drawer_qadr] = qpos
        self.data.qvel[self.model.jnt_dofadr[self.model.joint("drawer_joint").id]] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._contact_epoch += 1

    def _resolve_plan(self) -> list[dict]:
        plan = []
        for stage in self._task_def.stages:
            st = {k: (self._scene.name(v) if k in ("object", "target") else v)
                  for k, v in stage.items()}
            if st["skill"] == "push" and isinstance(st["goal"], str):
                xy = self.data.xpos[self._body[self._scene.name(st["goal"])]][:2]
                st["goal"] = (float(xy[0]), float(xy[1]))
            plan.append(st)
        return plan

    @property
    def plan(self) -> list[dict]:
        """The task's stages in order (expert contract); push goals resolved at reset."""
        return [dict(s) for s in self._plan]

    def _world_half(self, name: str) -> np.ndarray:
        mat = self.data.xmat[self._body[name]].reshape(3, 3)
        return np.abs(mat) @ self._half[name]

    def privileged_state(self) -> dict:
        """Full state for scripted experts (contract in envs/tabletop/__init__.py)."""
        d = self.data
        objects = {}
        for name, bid in self._body.items():
            obj = self._objects[name]
            objects[name] = dict(pos=d.xpos[bid].copy(), quat=d.xquat[bid].copy(),
                                 half_size=self._half[name].copy(), grasp_width=obj.grasp_width,
                                 graspable=bool(obj.graspable and obj.kind == "free"))
        arts = {}
        if self._has_drawer:
            objects["drawer"] = dict(pos=d.site_xpos[self._drawer_inner].copy(),
                                     quat=d.xquat[self._drawer_body].copy(),
                                     half_size=np.array(DRAWER_INNER), grasp_width=0.0,
                                     graspable=False)
            xmat = d.xmat[self._drawer_body].reshape(3, 3)
            arts["drawer"] = dict(qpos=float(d.qpos[self._drawer_qadr]), open_qpos=DRAWER_OPEN,
                                  closed_qpos=0.0,
                                  handle_pos=d.site_xpos[self._drawer_handle].copy(),
                                  axis=xmat @ np.array([-1.0, 0.0, 0.0]))
        return dict(ee_pos=d.site_xpos[self._site].copy(), ee_quat=self._ee_quat(),
                    gripper=self._gripper(), joint_pos=d.qpos[self._arm_qadr].copy(),
                    objects=objects, articulations=arts)

    def _ee_quat(self) -> np.ndarray:
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self._ee_xmat)
        return quat

    def _gripper(self) -> float:
        return float(self._qpos_fingers.sum())

    def _pad_contacts(self) -> tuple[set[int], set[int]]:
        """Bodies touching the left and the right finger pad (cached per physics state)."""
        d = self.data
        key = (d.time, d.ncon, self._contact_epoch)
        if self._contact_cache[0] == key:
            return self._contact_cache[1]
        left_pad, right_pad = self._pads
        bodies = self.model.geom_bodyid
        left: set[int] = set()
        right: set[int] = set()
        if d.ncon:
            # A plain loop over the few contacts beats a handful of numpy calls here.
            for g1, g2 in d.contact.geom[:d.ncon].tolist():
                if g1 == left_pad or g2 == left_pad:
                    left.add(int(bodies[g2 if g1 == left_pad else g1]))
                elif g1 == right_pad or g2 == right_pad:
                    right.add(int(bodies[g2 if g1 == right_pad else g1]))
        out = (left, right)
        self._contact_cache = (key, out)
        return out

    def _held(self, name: str) -> bool:
        left, right = self._pad_contacts()
        bid = self._drawer_body if name == "drawer" else self._body[name]
        return bid in left and bid in right

    # ------------------------------------------------------------------ success

    def _stage_done(self, stage: dict) -> bool:
        skill = stage["skill"]
        d = self.data
        if skill == "open":
            return bool(d.qpos[self._drawer_qadr] >= OPEN_SUCCESS)
        if skill == "close":
            return bool(d.qpos[self._drawer_qadr] <= CLOSED_SUCCESS)
        obj = stage["object"]
        p = d.xpos[self._body[obj]]
        if skill == "push":
            return bool(np.hypot(*(p[:2] - np.asarray(stage["goal"]))) <= PUSH_TOL)
        if skill != "pick_place":
            raise ValueError(f"unknown skill {skill!r}")
        if self._held(obj):
            return False
        target = stage["target"]
        if target == "drawer":
            c = d.site_xpos[self._drawer_inner]
            ix, iy, iz = DRAWER_INNER
            return bool(abs(p[0] - c[0]) <= ix and abs(p[1] - c[1]) <= iy
                        and p[2] - self._world_half(obj)[2] <= c[2] - iz + 0.02)
        tb = self._body[target]
        tdef = self._objects[target]
        local = d.xmat[tb].reshape(3, 3).T @ (p - d.xpos[tb])
        hs = self._half[target]
        if stage["mode"] == "in":
            inner = self._inner[target]
            return bool(abs(local[0]) <= inner[0] and abs(local[1]) <= inner[1]
                        and local[2] <= hs[2] + 0.02)
        if tdef.shape == "cylinder" and tdef.kind != "cabinet":
            inside = np.hypot(local[0], local[1]) <= hs[0]
        else:
            inside = abs(local[0]) <= hs[0] and abs(local[1]) <= hs[1]
        top = d.xpos[tb][2] + self._world_half(target)[2]
        return bool(inside and abs(p[2] - self._world_half(obj)[2] - top) <= PLACE_Z_TOL)

    def _current_stage(self) -> int:
        for i, stage in enumerate(self._plan):
            if not self._stage_done(stage):
                return i
        return len(self._plan)

    # ------------------------------------------------------------------ observation

    def _observation(self, render: bool = True) -> dict:
        d = self.data
        rgb = {}
        if render and self._renderer is not None:
            start = time.perf_counter()
            noise = self._image_noise
            for cam in self.cameras:
                self._renderer.update_scene(d, camera=self._cam_ids[cam])
                img = self._renderer.render()
                if noise:
                    sigma = 40.0 * noise.strength
                    img = np.clip(img + self._episode_rng.normal(0, sigma, img.shape), 0, 255)
                    img = img.astype(np.uint8)
                rgb[cam] = img
            self.render_s += time.perf_counter() - start
        proprio = np.empty(8, np.float32)
        proprio[:3] = self._ee_pos
        proprio[3:6] = mat_to_axis_angle(self._ee_mat)
        proprio[6:8] = self._qpos_fingers
        return dict(rgb=rgb, proprio=proprio, instruction=self.task.instruction)

    def _info(self) -> dict:
        stage = self._current_stage()
        success = stage >= len(self._plan)
        grasping = False
        if not success:
            st = self._plan[stage]
            name = st.get("object") or st.get("articulation")
            grasping = self._held(name)
        return dict(ee_pos=self._ee_pos.copy(), ee_quat=self._ee_quat(),
                    joint_pos=self._qpos_arm.copy(), gripper=self._gripper(),
                    is_grasping=bool(grasping), success=bool(success),
                    control_dt=self.control_dt, stage=stage, num_stages=len(self._plan),
                    step=self._steps)
