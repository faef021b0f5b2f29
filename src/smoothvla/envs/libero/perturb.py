"""LIBERO-Plus-style perturbations of a real LIBERO scene (the cheap ones).

The spec type, its parsing and the strength conventions are the tabletop suite's
(`smoothvla.envs.tabletop.perturbations`), so `perturbation="light@0.5"` means the same on
both suites. What each kind does here:

- language: the instruction is paraphrased (same rules as tabletop).
- light: every scene light's diffuse colour and direction, and the headlight ambient.
- camera: the agentview camera moves up to 0.12 s m, turns up to 6 s deg, fovy +-8 s deg.
- robot_init: arm joints = official init state + U(-0.35 s, 0.35 s) * 0.5 rad per joint
  (half the tabletop range: LIBERO arms start close to the table and furniture).
- image_noise: Gaussian pixel noise of std 40 s on every image.
- layout: every movable object shifted together by up to 0.08 s m plus up to 0.03 s m
  each, redrawn (up to 50 times) until no two objects come closer than they were.
- table_texture: table materials tinted towards a random colour by s (material rgba
  multiplies the texture, so the pattern stays and its colour changes).
- background: floor and wall materials tinted the same way.
Not done on LIBERO: unseen_object, unseen_receptacle, distractors, reposition (they need
new assets or BDDL edits).

Only model fields that rendering reads are touched (lights, cameras, materials), apart from
robot_init and layout, which change the initial state on purpose.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from smoothvla.envs.tabletop.perturbations import (
    PerturbationSpec,
    as_specs,
    blend,
    find,
    light_params,
    rewrite_instruction,
)
from smoothvla.errors import UserError

SUPPORTED = ("language", "light", "camera", "robot_init", "image_noise", "layout",
             "table_texture", "background")
ROBOT_INIT_RANGE = 0.175  # rad per unit strength
__all__ = [
    "SUPPORTED",
    "PerturbationSpec",
    "ScenePerturber",
    "as_specs",
    "find",
    "rewrite_instruction",
]


def check_supported(specs: tuple[PerturbationSpec, ...]) -> None:
    """ValueError for perturbation kinds the LIBERO backend does not implement."""
    bad = [s.kind for s in specs if s.kind not in SUPPORTED]
    if bad:
        raise UserError(f"perturbation(s) {bad} are not available on LIBERO; "
                        f"supported: {', '.join(SUPPORTED)}")


def _name(model: mujoco.MjModel, objtype: int, i: int) -> str:
    return mujoco.mj_id2name(model, objtype, i) or ""


class ScenePerturber:
    """Remembers the unperturbed appearance of a model and applies appearance perturbations.

    `apply(rng_for)` first restores the defaults, so perturbations never accumulate over
    resets; `rng_for(spec)` returns the generator of one spec for this episode.
    """

    def __init__(self, model: mujoco.MjModel, specs: tuple[PerturbationSpec, ...]):
        self.model = model
        self.specs = specs
        self.light_diffuse = model.light_diffuse.copy()
        self.light_dir = model.light_dir.copy()
        self.ambient = model.vis.headlight.ambient.copy()
        self.cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "agentview")
        self.cam_pos = model.cam_pos.copy()
        self.cam_quat = model.cam_quat.copy()
        self.cam_fovy = model.cam_fovy.copy()
        self.mat_rgba = model.mat_rgba.copy()
        names = [_name(model, mujoco.mjtObj.mjOBJ_MATERIAL, i) for i in range(model.nmat)]
        robot = ("robot0_", "gripper0_", "mount0_")
        self.table_mats = [i for i, n in enumerate(names)
                           if "table" in n.lower() and not n.startswith(robot)]
        self.background_mats = [i for i, n in enumerate(names)
                                if any(k in n.lower() for k in ("floor", "wall"))
                                and not n.startswith(robot)]

    def restore(self) -> None:
        m = self.model
        m.light_diffuse[:] = self.light_diffuse
        m.light_dir[:] = self.light_dir
        m.vis.headlight.ambient[:] = self.ambient
        m.cam_pos[:] = self.cam_pos
        m.cam_quat[:] = self.cam_quat
        m.cam_fovy[:] = self.cam_fovy
        m.mat_rgba[:] = self.mat_rgba

    def apply(self, rng_for) -> None:
        """Restore the defaults, then apply light / camera / material perturbations."""
        self.restore()
        m = self.model
        spec = find(self.specs, "light")
        if spec is not None:
            rng = rng_for(spec)
            for i in range(m.nlight):
                diffuse, direction, ambient = light_params(
                    spec.strength, rng, self.light_diffuse[i], self.light_dir[i], self.ambient)
                m.light_diffuse[i] = diffuse
                m.light_dir[i] = direction
            m.vis.headlight.ambient[:] = ambient
        spec = find(self.specs, "camera")
        if spec is not None and self.cam_id >= 0:
            rng = rng_for(spec)
            s = spec.strength
            m.cam_pos[self.cam_id] = self.cam_pos[self.cam_id] + _ball(rng) * 0.12 * s
            turn = np.zeros(4)
            mujoco.mju_axisAngle2Quat(turn, _ball(rng, unit=True), math.radians(6.0 * s))
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, turn, self.cam_quat[self.cam_id])
            m.cam_quat[self.cam_id] = quat
            m.cam_fovy[self.cam_id] = self.cam_fovy[self.cam_id] + rng.uniform(-8, 8) * s
        for kind, mats in (("table_texture", self.table_mats),
                           ("background", self.background_mats)):
            spec = find(self.specs, kind)
            if spec is not None:
                rng = rng_for(spec)
                for i in mats:
                    m.mat_rgba[i, :3] = blend(self.mat_rgba[i, :3], spec.strength, rng)


def _ball(rng: np.random.Generator, unit: bool = False) -> np.ndarray:
    """A random vector in the unit ball (or on the unit sphere)."""
    v = rng.normal(size=3)
    v /= max(np.linalg.norm(v), 1e-12)
    return v if unit else v * rng.uniform() ** (1 / 3)


def robot_init_offsets(strength: float, rng: np.random.Generator, n_joints: int) -> np.ndarray:
    """(n_joints,) joint offsets in radians for the robot_init perturbation."""
    return rng.uniform(-1.0, 1.0, n_joints) * ROBOT_INIT_RANGE * strength


def layout_offsets(strength: float, rng: np.random.Generator, xy: np.ndarray,
                   tries: int = 50) -> np.ndarray:
    """(n, 2) xy offsets for objects at `xy` (n, 2): a common shift up to 0.08 s m plus up to
    0.03 s m each, redrawn until no pair ends closer than it started (else zeros)."""
    n = len(xy)
    if n == 0:
        return np.zeros((0, 2))
    before = _pair_distances(xy)
    for _ in range(tries):
        common = _disc(rng) * 0.08 * strength
        own = np.stack([_disc(rng) for _ in range(n)]) * 0.03 * strength
        offsets = common + own
        if n < 2 or np.all(_pair_distances(xy + offsets) >= np.minimum(before, 0.06) - 1e-9):
            return offsets
    return np.zeros((n, 2))


def _disc(rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    return math.sqrt(rng.uniform()) * np.array([math.cos(angle), math.sin(angle)])


def _pair_distances(xy: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    return d[np.triu_indices(len(xy), 1)]


def image_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 image plus Gaussian noise of std 40 * strength, clipped to [0, 255]."""
    noisy = image.astype(np.float32) + rng.normal(0.0, 40.0 * strength, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
