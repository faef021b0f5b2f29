"""Perturbations of the tabletop suite for generalization tests (LIBERO-Plus, RL4VLA).

A `PerturbationSpec(kind, strength, seed)` is passed to `make(task_id, perturbation=...)`
(one spec, a sequence of specs, or a string "kind@strength"). `strength` in [0, 1] scales
the change (0 = none); `spec.seed` fixes choices made when the env is built (which unseen
object, which texture), and the reset seed drives the per-episode randomness (light,
camera, noise, positions). The table in `PERTURBATIONS` says what strength means for each.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from smoothvla.envs.tabletop.objects import (
    GROCERIES,
    UNSEEN_OBJECTS,
    UNSEEN_RECEPTACLES,
    ObjectDef,
    get_object,
    restyle,
)
from smoothvla.envs.tabletop.scene import (
    AGENTVIEW_TARGET,
    WORKSPACE_X,
    WORKSPACE_Y,
    SceneStyle,
    look_at_xyaxes,
)
from smoothvla.envs.tabletop.tasks import Placement, TaskDef
from smoothvla.errors import UserError

PERTURBATIONS: dict[str, str] = {
    "language": "instruction paraphrase: each rewrite rule (verb synonyms, polite prefix, filler) "
                "fires with probability = strength, at least one when strength > 0",
    "light": "key light intensity x [1 - 0.7 s, 1 + 0.6 s], direction tilted up to 60 s deg, "
             "colour tint up to +-0.5 s per channel, ambient x [1 - 0.6 s, 1 + 0.6 s]",
    "table_texture": "table texture pattern and colours: blend from the default wood towards "
                     "random colours by s; pattern becomes checker/gradient/flat at s > 0.5",
    "background": "wall and floor colours blended towards random colours by s",
    "camera": "agentview camera moved up to 0.12 s m, its look-at point up to 0.06 s m, "
              "field of view +-8 s deg",
    "robot_init": "initial joint positions = home + U(-0.35 s, 0.35 s) rad per joint",
    "image_noise": "Gaussian pixel noise of std 40 s (uint8 scale) on every image",
    "layout": "unseen positions: all objects shifted together by up to 0.08 s m plus up to "
              "0.03 s m each (no overlaps)",
    "unseen_object": "ceil(s * n) of the n graspable scene objects (task objects first) "
                     "replaced by held-out objects of other shapes/colours; instruction follows",
    "unseen_receptacle": "ceil(s * n) of the n receptacles (plate, basket, cabinet, bowl when "
                         "a target) recoloured, resized and renamed; instruction follows",
    "distractors": "round(1 + 3 s) extra held-out objects on free spots (none at s = 0)",
    "reposition": "mid-episode: at step 20 the first task object (if not held) jumps "
                  "0.04 + 0.08 s m in a random direction to a free spot",
}

_DEFAULT_STRENGTH = 0.5


@dataclass(frozen=True)
class PerturbationSpec:
    """One perturbation: `kind` from `list_perturbations()`, `strength` in [0, 1], `seed`."""

    kind: str
    strength: float = _DEFAULT_STRENGTH
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PERTURBATIONS:
            raise UserError(
                f"unknown perturbation {self.kind!r}; known: {', '.join(PERTURBATIONS)}")
        if not (0.0 <= float(self.strength) <= 1.0) or not np.isfinite(self.strength):
            raise UserError(f"perturbation strength must be in [0, 1], got {self.strength}")

    @property
    def name(self) -> str:
        """A short label, e.g. ``light@0.5`` (what Trajectory.perturbation records)."""
        return f"{self.kind}@{self.strength:g}"

    def rng(self, *extra: int) -> np.random.Generator:
        """A generator seeded by this spec, its kind and any extra integers."""
        kind_id = list(PERTURBATIONS).index(self.kind)
        return np.random.default_rng([int(self.seed), kind_id, *(int(e) for e in extra)])


def list_perturbations() -> list[str]:
    """Names of the perturbation kinds."""
    return list(PERTURBATIONS)


def as_specs(perturbation: Any) -> tuple[PerturbationSpec, ...]:
    """Normalize None | spec | "kind@strength" | sequence of those to a tuple of specs."""
    if perturbation is None or perturbation == "none":
        return ()
    if isinstance(perturbation, PerturbationSpec):
        return (perturbation,)
    if isinstance(perturbation, str):
        kind, _, strength = perturbation.partition("@")
        return (PerturbationSpec(kind, float(strength) if strength else _DEFAULT_STRENGTH),)
    if isinstance(perturbation, Sequence):
        specs = tuple(s for p in perturbation for s in as_specs(p))
        kinds = [s.kind for s in specs]
        if len(set(kinds)) != len(kinds):
            raise UserError(f"each perturbation kind may appear once, got {kinds}")
        return specs
    raise ValueError(f"perturbation must be a PerturbationSpec, str or sequence, got "
                     f"{type(perturbation).__name__}")


def find(specs: tuple[PerturbationSpec, ...], kind: str) -> PerturbationSpec | None:
    """The spec of this kind with strength > 0, if any."""
    for s in specs:
        if s.kind == kind and s.strength > 0:
            return s
    return None


# ------------------------------------------------------------------------ language

_REWRITES: list[tuple[str, list[str]]] = [
    (r"\bpick up\b", ["grab", "lift", "take", "grasp"]),
    (r"\bplace it\b", ["put it", "set it", "drop it", "leave it"]),
    (r"^put\b", ["place", "move", "set"]),
    (r"\bopen\b", ["pull open", "slide open"]),
    (r"\bclose\b", ["shut", "push closed"]),
    (r"^push\b", ["slide", "shove", "nudge"]),
    (r"^stack\b", ["pile", "place"]),
    (r"\bboth\b", ["each of"]),
    (r"\bon top of\b", ["onto the top of", "up on"]),
]
_PREFIXES = ["please ", "robot, ", "now ", "could you "]
_SUFFIXES = [" please", " carefully", ", thanks", " for me"]


def rewrite_instruction(text: str, strength: float, rng: np.random.Generator) -> str:
    """A paraphrase of `text`: each applicable rule fires with probability `strength`; when
    strength > 0 at least one rule fires, so the text always changes."""
    if strength <= 0:
        return text
    rules = [(pat, alts) for pat, alts in _REWRITES if re.search(pat, text)]
    fire = [rng.random() < strength for _ in rules]
    out = text
    for (pat, alts), f in zip(rules, fire):
        if f:
            out = re.sub(pat, str(rng.choice(alts)), out, count=1)
    if rng.random() < strength:
        out = str(rng.choice(_PREFIXES)) + out
    if rng.random() < strength or out == text:
        out = out + str(rng.choice(_SUFFIXES))
    return out


# ------------------------------------------------------------------------ colours

def blend(rgb: Sequence[float], strength: float, rng: np.random.Generator) -> tuple[float, ...]:
    """Blend a colour towards a random one by `strength`."""
    target = rng.uniform(0.05, 0.95, 3)
    return tuple(float(v) for v in (1 - strength) * np.asarray(rgb) + strength * target)


def light_params(strength: float, rng: np.random.Generator, diffuse: np.ndarray,
                 direction: np.ndarray, ambient: np.ndarray) -> tuple[np.ndarray, ...]:
    """Perturbed (diffuse (3,), direction (3,), ambient (3,)) of the key light."""
    scale = rng.uniform(1 - 0.7 * strength, 1 + 0.6 * strength)
    tint = 1 + rng.uniform(-0.5, 0.5, 3) * strength
    new_diffuse = np.clip(diffuse * scale * tint, 0, 1)
    tilt = np.deg2rad(60 * strength) * rng.uniform(0.3, 1.0)
    az = rng.uniform(0, 2 * np.pi)
    d = direction / np.linalg.norm(direction)
    d = d + np.tan(tilt) * np.array([np.cos(az), np.sin(az), 0.0])
    new_dir = d / np.linalg.norm(d)
    new_ambient = np.clip(ambient * rng.uniform(1 - 0.6 * strength, 1 + 0.6 * strength), 0, 1)
    return new_diffuse, new_dir, new_ambient


# ------------------------------------------------------------------------ applying them


@dataclass(frozen=True)
class SceneObjects:
    """The objects of one env after structural perturbations.

    Attributes:
        objects: scene name -> ObjectDef (renamed objects under their new names).
        rename: task name -> scene name, for swapped objects and restyled receptacles.
        layout_task: the task with distractors appended, for `sample_layout`.
    """

    objects: dict[str, ObjectDef]
    rename: dict[str, str]
    layout_task: TaskDef

    def name(self, task_name: str) -> str:
        return self.rename.get(task_name, task_name)


def scene_objects(task: TaskDef, specs: tuple[PerturbationSpec, ...]) -> SceneObjects:
    """Apply unseen_object, unseen_receptacle and distractors to the task's scene."""
    objs = {n: get_object(n) for n in task.objects}
    rename: dict[str, str] = {}
    plan_objs = [s["object"] for s in task.stages if "object" in s]
    unseen = find(specs, "unseen_object")
    if unseen:
        grasp = [n for n in objs if objs[n].graspable and objs[n].kind == "free"]
        grasp = sorted(grasp, key=lambda n: (n not in plan_objs, grasp.index(n)))
        k = math.ceil(unseen.strength * len(grasp))
        pool = list(UNSEEN_OBJECTS)
        for name, idx in zip(grasp[:k], unseen.rng().permutation(len(pool))[:k]):
            rename[name] = pool[idx]
            objs[name] = UNSEEN_OBJECTS[pool[idx]]
    recep = find(specs, "unseen_receptacle")
    if recep:
        targets = [s.get("target") for s in task.stages]
        names = [n for n in objs if n in UNSEEN_RECEPTACLES and (n != "bowl" or n in targets)]
        names = sorted(names, key=lambda n: (n not in targets, names.index(n)))
        rng = recep.rng()
        for name in names[:math.ceil(recep.strength * len(names))]:
            options = UNSEEN_RECEPTACLES[name]
            new, rgb, scale = options[int(rng.integers(len(options)))]
            rename[name] = new
            objs[name] = restyle(objs[name], new, new, rgb, scale)
    extra: list[str] = []
    distract = find(specs, "distractors")
    if distract:
        used = set(objs) | set(rename.values())
        pool = [n for n in list(UNSEEN_OBJECTS) + list(GROCERIES) if n not in used]
        n = round(1 + 3 * distract.strength)
        extra = [pool[i] for i in distract.rng().permutation(len(pool))[:n]]
        for name in extra:
            objs[name] = get_object(name)
    return SceneObjects(objects={o.name: o for o in objs.values()}, rename=rename,
                        layout_task=dataclasses.replace(task, objects=task.objects + tuple(extra)))


def instruction_for(text: str, scene: SceneObjects, specs: tuple[PerturbationSpec, ...]) -> str:
    """The instruction with renamed objects' display names, then the language rewrite."""
    for old, new in scene.rename.items():
        text = text.replace(f"the {get_object(old).display}",
                            f"the {scene.objects[new].display}")
    lang = find(specs, "language")
    if lang:
        text = rewrite_instruction(text, lang.strength, lang.rng())
    return text


def scene_style(specs: tuple[PerturbationSpec, ...]) -> SceneStyle:
    """Table texture and background colours (table_texture, background)."""
    style = SceneStyle()
    tex = find(specs, "table_texture")
    if tex:
        rng = tex.rng()
        pattern = (str(rng.choice(["checker", "gradient", "flat"])) if tex.strength > 0.5
                   else style.table_texture)
        style = dataclasses.replace(style, table_texture=pattern,
                                    table_rgb1=blend(style.table_rgb1, tex.strength, rng),
                                    table_rgb2=blend(style.table_rgb2, tex.strength, rng))
    bg = find(specs, "background")
    if bg:
        rng = bg.rng()
        style = dataclasses.replace(style, wall_rgb=blend(style.wall_rgb, bg.strength, rng),
                                    floor_rgb=blend(style.floor_rgb, bg.strength, rng))
    return style


def perturb_layout(layout: dict[str, Placement], objects: dict[str, ObjectDef],
                   specs: tuple[PerturbationSpec, ...], seed: int,
                   init_id: int) -> dict[str, Placement]:
    """Unseen positions (layout): one shared shift plus a small jitter each, no overlaps."""
    spec = find(specs, "layout")
    if not spec:
        return layout
    rng = spec.rng(seed, init_id)
    s = spec.strength
    shift = rng.uniform(-1, 1, 2) * 0.08 * s
    out = dict(layout)
    placed: dict[str, tuple[float, float, float]] = {}
    for name, pl in layout.items():
        r = objects[name].footprint
        if pl.support_z > 0:  # stays on its support, which moved by the shift
            out[name] = dataclasses.replace(pl, x=pl.x + shift[0], y=pl.y + shift[1])
            continue
        for attempt in range(20):
            jitter = rng.uniform(-1, 1, 2) * 0.03 * s if attempt < 19 else np.zeros(2)
            x, y = np.array([pl.x, pl.y]) + shift + jitter
            x = float(np.clip(x, WORKSPACE_X[0] - 0.05 * s, WORKSPACE_X[1] + 0.05 * s))
            y = float(np.clip(y, WORKSPACE_Y[0] - 0.05 * s, WORKSPACE_Y[1] + 0.05 * s))
            if all(np.hypot(x - px, y - py) >= r + pr + 0.005 for px, py, pr in placed.values()):
                break
        placed[name] = (x, y, r)
        out[name] = dataclasses.replace(pl, x=x, y=y)
    return out


@dataclass(frozen=True)
class VisualDefaults:
    """The model's unperturbed camera and light, restored before each reset."""

    cam_pos: np.ndarray
    cam_quat: np.ndarray
    cam_fovy: float
    light_diffuse: np.ndarray
    light_dir: np.ndarray
    ambient: np.ndarray

    @classmethod
    def of(cls, model: mujoco.MjModel, cam_id: int) -> VisualDefaults:
        return cls(model.cam_pos[cam_id].copy(), model.cam_quat[cam_id].copy(),
                   float(model.cam_fovy[cam_id]), model.light_diffuse[0].copy(),
                   model.light_dir[0].copy(), model.vis.headlight.ambient.copy())


def apply_visuals(model: mujoco.MjModel, cam_id: int, defaults: VisualDefaults,
                  specs: tuple[PerturbationSpec, ...], seed: int, init_id: int) -> None:
    """Reset camera `cam_id` and the key light to defaults, then apply camera and light."""
    m, dv = model, defaults
    m.cam_pos[cam_id], m.cam_quat[cam_id], m.cam_fovy[cam_id] = dv.cam_pos, dv.cam_quat, dv.cam_fovy
    m.light_diffuse[0], m.light_dir[0] = dv.light_diffuse, dv.light_dir
    m.vis.headlight.ambient[:] = dv.ambient
    cam = find(specs, "camera")
    if cam:
        rng = cam.rng(seed, init_id)
        s = cam.strength
        offset = rng.normal(size=3)
        new_pos = dv.cam_pos + offset / np.linalg.norm(offset) * 0.12 * s * rng.uniform(0.5, 1)
        target = np.array(AGENTVIEW_TARGET) + rng.uniform(-1, 1, 3) * 0.06 * s
        xy = look_at_xyaxes(new_pos, target)
        mat = np.stack([xy[:3], xy[3:], np.cross(xy[:3], xy[3:])], axis=1)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, mat.reshape(-1))
        m.cam_pos[cam_id], m.cam_quat[cam_id] = new_pos, quat
        m.cam_fovy[cam_id] = dv.cam_fovy + rng.uniform(-8, 8) * s
    light = find(specs, "light")
    if light:
        diffuse, direction, ambient = light_params(
            light.strength, light.rng(seed, init_id), dv.light_diffuse, dv.light_dir, dv.ambient)
        m.light_diffuse[0], m.light_dir[0] = diffuse, direction
        m.vis.headlight.ambient[:] = ambient
