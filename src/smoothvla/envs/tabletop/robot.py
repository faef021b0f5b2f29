"""The Franka Panda arm in MJCF, and the differential-IK controller that drives it.

Kinematics are the Panda's published ones (Franka "Robot and interface specifications",
modified DH): link offsets d1 = 0.333, d3 = 0.316, a4 = 0.0825, a5 = -0.0825, d5 = 0.384,
a7 = 0.088, flange d = 0.107, flange -> tool centre point 0.1034 m, joint limits as published.
The body tree follows the MuJoCo Menagerie layout of the same robot, with low-polygon
capsule/box geometry instead of meshes (fast software rendering, cheap contacts).

Control (LIBERO / robosuite OSC_POSE-style delta): each control step the action moves a
target pose by (pos * 0.05 m, world-frame axis-angle * 0.5 rad); damped-least-squares IK on
an arm-only model turns the target pose into joint targets; joint position servos with
gravity compensation track them at 500 Hz.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

try:  # the LAPACK gufunc behind np.linalg.solve, minus its ~8 us of Python-side checks
    from numpy.linalg import _umath_linalg

    def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """np.linalg.solve for float64 (M, M) and (M, K) (same dgesv call, same bits); no
        LinAlgError on a singular `a` (the damped J J^T + l^2 I never is)."""
        return _umath_linalg.solve(a, b, signature="dd->d")
except ImportError:  # pragma: no cover - numpy without the private module
    _solve = np.linalg.solve

JOINT_NAMES = tuple(f"joint{i}" for i in range(1, 8))
FINGER_NAMES = ("finger_joint1", "finger_joint2")
JOINT_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
# Elbow-up pose with the gripper pointing straight down, fingers closing along world y.
HOME_QPOS = np.array([0.0, -0.2, 0.0, -2.4, 0.0, 2.2, np.pi / 4])
FINGER_OPEN = 0.04  # metres per finger: opening between the pads is up to 0.08 m
TCP_OFFSET = 0.1034  # flange -> grasp point between the fingertips (Franka hand spec)

ACTION_SCALE = {"pos": 0.05, "rot": 0.5}  # per unit action per control step (robosuite OSC)

# Servo gains per joint (N m / rad, N m s / rad): Menagerie stiffness; damping kp/25 (near
# critical) since the env adds velocity feed-forward instead of relying on heavy damping.
KP = np.array([4500, 4500, 3500, 3500, 2000, 2000, 2000])
KV = np.array([180, 180, 140, 140, 80, 80, 80])
_FORCE = (87, 87, 87, 87, 12, 12, 12)
# Stiff pad contacts: default soft contacts let the light fingers sink ~1 cm into objects.
_PAD_SOFTNESS = 'solref="0.004 1" solimp="0.99 0.999 0.001"'
_MASS = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)


def _joint(i: int) -> str:
    lo, hi = JOINT_LOWER[i], JOINT_UPPER[i]
    return (
        f'<joint name="joint{i + 1}" axis="0 0 1" range="{lo} {hi}" '
        f'damping="1" armature="0.1" frictionloss="0"/>'
    )


def _inertial(i: int) -> str:
    m = _MASS[i]
    return f'<inertial pos="0 0 0" mass="{m}" diaginertia="{0.01 * m} {0.01 * m} {0.006 * m}"/>'


def panda_xml(base_pos: tuple[float, float, float], arm_collisions: bool = True) -> str:
    """The `<body>` tree of the Panda, its base at `base_pos`.

    Arm links collide only with the world and objects (contype 2, conaffinity 1), never
    with each other; the hand and finger pads collide with everything.
    """
    arm = 'contype="2" conaffinity="1"' if arm_collisions else 'contype="0" conaffinity="0"'
    white = 'rgba="0.92 0.92 0.92 1"'
    dark = 'rgba="0.25 0.25 0.28 1"'
    x, y, z = base_pos
    return f"""
<body name="link0" pos="{x} {y} {z}">
  <geom type="cylinder" size="0.075 0.07" pos="0 0 0.07" {white} {arm}/>
  <body name="link1" pos="0 0 0.333" gravcomp="1">
    {_inertial(0)}{_joint(0)}
    <geom type="capsule" fromto="0 0 -0.19 0 0 -0.02" size="0.06" {white} {arm}/>
    <body name="link2" quat="1 -1 0 0" gravcomp="1">
      {_inertial(1)}{_joint(1)}
      <geom type="capsule" fromto="0 0 -0.05 0 0 0.05" size="0.06" {dark} {arm}/>
      <geom type="capsule" fromto="0 0 0 0 -0.2 0" size="0.06" {white} {arm}/>
      <body name="link3" pos="0 -0.316 0" quat="1 1 0 0" gravcomp="1">
        {_inertial(2)}{_joint(2)}
        <geom type="capsule" fromto="0 0 -0.12 0 0 -0.02" size="0.055" {white} {arm}/>
        <geom type="capsule" fromto="0 0 0 0.0825 0 0" size="0.05" {white} {arm}/>
        <body name="link4" pos="0.0825 0 0" quat="1 1 0 0" gravcomp="1">
          {_inertial(3)}{_joint(3)}
          <geom type="capsule" fromto="0 0 -0.05 0 0 0.05" size="0.055" {dark} {arm}/>
          <geom type="capsule" fromto="0 0 0 -0.0825 0.1 0" size="0.05" {white} {arm}/>
          <body name="link5" pos="-0.0825 0.384 0" quat="1 -1 0 0" gravcomp="1">
            {_inertial(4)}{_joint(4)}
            <geom type="capsule" fromto="0 0 -0.26 0 0 -0.03" size="0.05" {white} {arm}/>
            <body name="link6" quat="1 1 0 0" gravcomp="1">
              {_inertial(5)}{_joint(5)}
              <geom type="capsule" fromto="0 0 -0.03 0 0 0.02" size="0.05" {dark} {arm}/>
              <geom type="capsule" fromto="0 0 0 0.088 0 0" size="0.045" {white} {arm}/>
              <body name="link7" pos="0.088 0 0" quat="1 1 0 0" gravcomp="1">
                {_inertial(6)}{_joint(6)}
                <geom type="cylinder" size="0.045 0.04" pos="0 0 0.06" {dark} {arm}/>
                <body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834" gravcomp="1">
                  <inertial pos="0 0 0.03" mass="0.73" diaginertia="0.002 0.0005 0.002"/>
                  <geom type="box" size="0.025 0.095 0.025" pos="0 0 0.032" {white}/>
                  <geom type="cylinder" size="0.035 0.008" pos="0 0 0.008" {dark}
                        contype="0" conaffinity="0"/>
                  <site name="grasp_site" pos="0 0 {TCP_OFFSET}" size="0.004" rgba="1 0 0 0"/>
                  <camera name="eye_in_hand" pos="0.06 0 0.02" quat="0 0.7071068 0.7071068 0"
                          fovy="75"/>
                  <body name="left_finger" pos="0 0 0.0584" gravcomp="1">
                    <inertial pos="0 0.01 0.03" mass="0.015" diaginertia="1e-5 1e-5 1e-5"/>
                    <joint name="finger_joint1" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}"
                           damping="5" armature="0.1"/>
                    <geom type="box" size="0.01 0.008 0.02" pos="0 0.0145 0.02" {dark}
                          contype="0" conaffinity="0"/>
                    <geom name="left_pad" type="box" size="0.01 0.0065 0.0125" pos="0 0.0065 0.045"
                          friction="1.5 0.02 0.001" condim="4" {_PAD_SOFTNESS} {dark}/>
                  </body>
                  <body name="right_finger" pos="0 0 0.0584" quat="0 0 0 1" gravcomp="1">
                    <inertial pos="0 0.01 0.03" mass="0.015" diaginertia="1e-5 1e-5 1e-5"/>
                    <joint name="finger_joint2" type="slide" axis="0 1 0" range="0 {FINGER_OPEN}"
                           damping="5" armature="0.1"/>
                    <geom type="box" size="0.01 0.008 0.02" pos="0 0.0145 0.02" {dark}
                          contype="0" conaffinity="0"/>
                    <geom name="right_pad" type="box" size="0.01 0.0065 0.0125" pos="0 0.0065 0.045"
                          friction="1.5 0.02 0.001" condim="4" {_PAD_SOFTNESS} {dark}/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""


def actuators_xml() -> str:
    """Joint position servos for the arm and one force-limited servo per finger."""
    lines = []
    for i in range(7):
        kp, kv, f = KP[i], KV[i], _FORCE[i]
        lo, hi = JOINT_LOWER[i], JOINT_UPPER[i]
        lines.append(
            f'<position name="act{i + 1}" joint="joint{i + 1}" kp="{kp}" kv="{kv}" '
            f'ctrlrange="{lo} {hi}" forcerange="{-f} {f}"/>'
        )
    for name in FINGER_NAMES:
        lines.append(
            f'<position name="act_{name}" joint="{name}" kp="800" kv="20" '
            f'ctrlrange="-0.01 {FINGER_OPEN}" forcerange="-35 35"/>'
        )
    return "\n".join(lines)


def arm_model(base_pos: tuple[float, float, float]) -> mujoco.MjModel:
    """A model with the arm only: the IK solver's scratch kinematics."""
    xml = f"""<mujoco model="panda_ik"><worldbody>{panda_xml(base_pos, False)}</worldbody>
    </mujoco>"""
    return mujoco.MjModel.from_xml_string(xml)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, np.asarray(q, dtype=np.float64))
    return out.reshape(3, 3)


def _orientation_error(target_mat: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """World-frame axis-angle vector that rotates `mat` onto `target_mat`."""
    r = target_mat @ mat.T
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, r.reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def axis_angle_to_mat(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector (3,)."""
    rotvec = np.asarray(rotvec, dtype=np.float64).ravel()
    angle = math.sqrt(rotvec.dot(rotvec))  # == np.linalg.norm (same dot, same sqrt)
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    if angle > 1e-12:
        mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, quat)
    return out.reshape(3, 3)


def mat_to_axis_angle(mat: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) of a rotation matrix."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat).reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class DiffIK:
    """Damped-least-squares IK from an ee target pose to 7 joint targets.

    Runs on its own arm-only model so that solving never touches the simulation state.
    A small null-space pull towards `HOME_QPOS` keeps the redundant elbow away from limits.
    """

    def __init__(self, base_pos: tuple[float, float, float], damping: float = 0.05,
                 iterations: int = 2, nullspace_gain: float = 0.05) -> None:
        self.model = arm_model(base_pos)
        self.data = mujoco.MjData(self.model)
        self.site = self.model.site("grasp_site").id
        self._damp_eye = damping**2 * np.eye(6)
        self.iterations = iterations
        self.nullspace_gain = nullspace_gain
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        # Persistent views into the scratch data (its buffers never move) and scratch arrays.
        self._qpos = self.data.qpos[:7]
        self._site_pos = self.data.site_xpos[self.site]
        self._site_mat = self.data.site_xmat[self.site].reshape(3, 3)
        self._quat = np.empty(4)

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-site position (3,) and rotation matrix (3, 3) at arm joints q (7,)."""
        self.data.qpos[:7] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3)

    def _error(self, q: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray,
               err: np.ndarray) -> None:
        self._qpos[:] = q
        mujoco.mj_kinematics(self.model, self.data)
        err[:3] = target_pos - self._site_pos
        # = _orientation_error(target_mat, site mat), written straight into err[3:]
        mujoco.mju_mat2Quat(self._quat, (target_mat @ self._site_mat.T).reshape(-1))
        mujoco.mju_quat2Vel(err[3:], self._quat, 1.0)

    def solve(self, q: np.ndarray, target_pos: np.ndarray, target_mat: np.ndarray) -> np.ndarray:
        """Joint targets (7,) reaching the target pose from the seed configuration q (7,).

        One damped-least-squares step with the Jacobian at q, then `iterations - 1`
        corrector steps that re-evaluate the pose error but reuse that Jacobian (a chord
        method: the per-step motion is small, so J barely changes, and FK is cheap).
        """
        m, d = self.model, self.data
        q = np.array(q, dtype=np.float64)
        err = np.empty(6)
        self._error(q, target_pos, target_mat, err)
        mujoco.mj_comPos(m, d)
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
        jac = np.concatenate([self._jacp[:, :7], self._jacr[:, :7]])
        pinv = _solve(jac @ jac.T + self._damp_eye, jac).T  # J^T (J J^T + l^2 I)^-1
        # Null-space posture term (I - J^+ J)(home - q) keeps the elbow near its home pose.
        posture = self.nullspace_gain * (HOME_QPOS - q)
        q = q + pinv @ err + posture - pinv @ (jac @ posture)
        for _ in range(self.iterations - 1):
            q = np.minimum(np.maximum(q, JOINT_LOWER, out=q), JOINT_UPPER, out=q)
            self._error(q, target_pos, target_mat, err)
            q = q + pinv @ err
        return np.minimum(np.maximum(q, JOINT_LOWER, out=q), JOINT_UPPER, out=q)
