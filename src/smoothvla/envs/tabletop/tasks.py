"""The four tabletop suites (10 tasks each, mirroring LIBERO) and their fixed initial layouts.

A task is a scene (object names), an instruction, a plan of stages in the expert contract's
format (`dict(skill=..., ...)`) whose conjunction is the success predicate, and a layout
function: `init_id` -> a deterministic placement of every object (50 per task).

Directions in instructions are the robot's: left = +y, right = -y, "in front of" = nearer
the robot (-x), "behind" = farther from it (+x).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from smoothvla.envs.tabletop.objects import CABINET_HALF, DRAWER_TRAVEL, get_object
from smoothvla.envs.tabletop.scene import WORKSPACE_X, WORKSPACE_Y
from smoothvla.errors import UserError

NUM_INIT_STATES = 50
MAX_STEPS = {"tabletop-spatial": 220, "tabletop-object": 280, "tabletop-goal": 300,
             "tabletop-long": 520}
CABINET_X = 0.16  # cabinets stand at the far edge, the drawer sliding out towards the robot
CABINET_CLEARANCE = 0.05
TABLE_CENTER = (np.mean(WORKSPACE_X), np.mean(WORKSPACE_Y))


@dataclass(frozen=True)
class Placement:
    """Where one object starts: xy on the table, height of its support (0 = table), yaw."""

    x: float
    y: float
    support_z: float = 0.0
    yaw: float = 0.0


Layout = dict[str, Placement]


@dataclass(frozen=True)
class TaskDef:
    """One task. `stages` use the plan format; a push goal may name a scene object ("zone")
    whose xy is substituted at reset. `fixed` places some objects before the rest are
    scattered (spatial relations, cabinets)."""

    suite: str
    name: str
    instruction: str
    objects: tuple[str, ...]
    stages: tuple[dict, ...]
    drawer_open: bool = False
    fixed: Callable[[np.random.Generator], Layout] | None = field(default=None, compare=False)

    @property
    def task_id(self) -> str:
        return f"{self.suite}/{self.name}-v1"


# ---------------------------------------------------------------------------- layouts


def _uniform_xy(rng: np.random.Generator, margin: float = 0.0) -> tuple[float, float]:
    return (float(rng.uniform(WORKSPACE_X[0] + margin, WORKSPACE_X[1] - margin)),
            float(rng.uniform(WORKSPACE_Y[0] + margin, WORKSPACE_Y[1] - margin)))


def _yaw(rng: np.random.Generator, name: str) -> float:
    obj = get_object(name)
    if obj.kind != "free" or obj.shape != "box":
        return 0.0
    return float(rng.uniform(-np.pi / 4, np.pi / 4))


def _clear(xy: tuple[float, float], r: float, placed: dict[str, tuple[float, float, float]],
           gap: float = 0.012) -> bool:
    return all(np.hypot(xy[0] - p[0], xy[1] - p[1]) >= r + p[2] + gap for p in placed.values())


def sample_layout(task: TaskDef, init_id: int, max_tries: int = 200) -> Layout:
    """The deterministic layout of `init_id` for this task (rejection sampling)."""
    if not 0 <= init_id < NUM_INIT_STATES:
        raise UserError(f"init_id must be in [0, {NUM_INIT_STATES}), got {init_id}")
    seed = [zlib.crc32(task.task_id.encode()), int(init_id)]
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        layout = _try_layout(task, rng)
        if layout is not None:
            return layout
    raise RuntimeError(f"could not lay out {task.task_id} init {init_id}")


def _try_layout(task: TaskDef, rng: np.random.Generator) -> Layout | None:
    layout: Layout = {}
    disks: dict[str, tuple[float, float, float]] = {}
    if "cabinet" in task.objects:
        y = float(rng.uniform(-0.12, 0.12))
        layout["cabinet"] = Placement(CABINET_X, y)
        # Extra room: a hand beside the 0.13 m tall cabinet must not touch it.
        disks["cabinet"] = (CABINET_X, y, get_object("cabinet").footprint + CABINET_CLEARANCE)
        # Keep the drawer's sweep free.
        front = CABINET_X - CABINET_HALF[0] - DRAWER_TRAVEL / 2 - 0.02
        disks["_drawer"] = (front, y, CABINET_HALF[1])
    if task.fixed is not None:
        fixed = task.fixed(rng)
        if fixed is None:
            return None
        for name, pl in fixed.items():
            layout[name] = pl
            if pl.support_z == 0.0:
                xy = (pl.x, pl.y)
                r = get_object(name).footprint
                if not _clear(xy, r, disks):
                    return None
                disks[name] = (pl.x, pl.y, r)
    for name in task.objects:
        if name in layout:
            continue
        r = get_object(name).footprint
        for _ in range(100):
            xy = _uniform_xy(rng, margin=min(r, 0.05))
            if _clear(xy, r, disks):
                break
        else:
            return None
        layout[name] = Placement(xy[0], xy[1], 0.0, _yaw(rng, name))
        disks[name] = (xy[0], xy[1], r)
    return layout


# ---------------------------------------------------------------------------- spatial


def _spatial_fixed(relation: str) -> Callable[[np.random.Generator], Layout | None]:
    """Placements of plate, ramekin, cookie box and both bowls so that exactly bowl_1
    satisfies the relation."""

    def fixed(rng: np.random.Generator) -> Layout | None:
        px, py = float(rng.uniform(-0.14, -0.02)), float(rng.uniform(-0.08, 0.08))
        d = float(rng.uniform(0.13, 0.16))
        lay: Layout = {"plate": Placement(px, py)}
        if relation in ("left", "right"):
            s = 1.0 if relation == "left" else -1.0
            lay["bowl_1"] = Placement(px + rng.uniform(-0.02, 0.02), py + s * d)
            lay["bowl_2"] = Placement(px + rng.uniform(-0.03, 0.03), py - s * d)
        elif relation in ("front", "behind"):
            s = -1.0 if relation == "front" else 1.0
            lay["plate"] = Placement(float(rng.uniform(-0.1, -0.06)), py)
            px = lay["plate"].x
            lay["bowl_1"] = Placement(px + s * d, py + rng.uniform(-0.02, 0.02))
            lay["bowl_2"] = Placement(px - s * d, py + rng.uniform(-0.02, 0.02))
        elif relation in ("ramekin", "between", "on_box", "box"):
            side = float(rng.choice([-1.0, 1.0]))
            py = -side * float(rng.uniform(0.02, 0.07))
            lay["plate"] = Placement(px, py)
            ox, oy = float(rng.uniform(-0.2, 0.0)), side * float(rng.uniform(0.16, 0.2))
            toward_center = 1.0 if ox < TABLE_CENTER[0] else -1.0
            if relation in ("ramekin", "between"):
                lay["ramekin"] = Placement(ox, oy)
                if relation == "between":
                    lay["bowl_1"] = Placement((px + ox) / 2, (py + oy) / 2)
                else:
                    lay["bowl_1"] = Placement(ox + toward_center * 0.085, oy)
            else:
                lay["cookie_box"] = Placement(ox, oy)
                if relation == "on_box":
                    top = 2 * get_object("cookie_box").half_size[2]
                    lay["bowl_1"] = Placement(ox, oy, top)
                else:
                    lay["bowl_1"] = Placement(ox + toward_center * 0.125, oy)
            lay["bowl_2"] = Placement(px + rng.uniform(-0.03, 0.03), py - side * d)
        elif relation == "center":
            cx, cy = TABLE_CENTER
            lay["plate"] = Placement(cx + rng.uniform(-0.04, 0.04),
                                     float(rng.choice([-1.0, 1.0])) * rng.uniform(0.14, 0.17))
            lay["bowl_1"] = Placement(cx + rng.uniform(-0.02, 0.02), cy + rng.uniform(-0.02, 0.02))
            lay["bowl_2"] = Placement(float(rng.choice(WORKSPACE_X)),
                                      -np.sign(lay["plate"].y) * rng.uniform(0.15, 0.22))
        elif relation == "closest":
            lay["plate"] = Placement(float(rng.uniform(-0.05, 0.05)), py)
            y1, y2 = (float(v) for v in rng.permutation([-0.14, 0.14]) + rng.uniform(-0.04, 0.04, 2))
            lay["bowl_1"] = Placement(float(rng.uniform(-0.25, -0.2)), y1)
            lay["bowl_2"] = Placement(float(rng.uniform(0.0, 0.1)), y2)
        else:
            raise ValueError(f"unknown spatial relation {relation!r}")
        return lay

    return fixed


_SPATIAL = [
    ("left", "left-of-plate", "left of the plate"),
    ("right", "right-of-plate", "right of the plate"),
    ("front", "in-front-of-plate", "in front of the plate"),
    ("behind", "behind-plate", "behind the plate"),
    ("ramekin", "next-to-ramekin", "next to the ramekin"),
    ("between", "between-plate-and-ramekin", "between the plate and the ramekin"),
    ("on_box", "on-cookie-box", "on the cookie box"),
    ("center", "at-table-center", "at the table center"),
    ("box", "next-to-cookie-box", "next to the cookie box"),
    ("closest", "closest-to-robot", "closest to the robot"),
]


def _spatial_tasks() -> list[TaskDef]:
    scene = ("plate", "ramekin", "cookie_box", "bowl_1", "bowl_2")
    return [
        TaskDef("tabletop-spatial", f"pick-bowl-{slug}-place-plate",
                f"pick up the black bowl {words} and place it on the plate", scene,
                (dict(skill="pick_place", object="bowl_1", target="plate", mode="on"),),
                fixed=_spatial_fixed(rel))
        for rel, slug, words in _SPATIAL
    ]


# ---------------------------------------------------------------------------- object


_OBJECT_TARGETS = ["ketchup", "mustard", "milk", "butter", "cream_cheese", "tomato_sauce",
                   "orange_juice", "alphabet_soup", "bbq_sauce", "salad_dressing"]
_OBJECT_OTHERS = ["chocolate_pudding", "cookies"]


def _object_tasks() -> list[TaskDef]:
    pool = _OBJECT_TARGETS + _OBJECT_OTHERS
    tasks = []
    for i, name in enumerate(_OBJECT_TARGETS):
        others = [pool[(i + k) % len(pool)] for k in (3, 5, 8)]
        others = [o if o != name else pool[(i + 10) % len(pool)] for o in others]
        display = get_object(name).display
        tasks.append(TaskDef(
            "tabletop-object", f"pick-{name.replace('_', '-')}-place-basket",
            f"pick up the {display} and place it in the basket",
            ("basket", name, *others),
            (dict(skill="pick_place", object=name, target="basket", mode="in"),)))
    return tasks


# ---------------------------------------------------------------------------- goal


def _pp(obj: str, target: str, mode: str = "on") -> dict:
    return dict(skill="pick_place", object=obj, target=target, mode=mode)


def _goal_tasks() -> list[TaskDef]:
    scene = ("cabinet", "plate", "bowl", "red_cube", "blue_cube", "zone")
    spec = [
        ("open-drawer", "open the drawer of the cabinet", (dict(skill="open",
                                                                articulation="drawer"),), False),
        ("close-drawer", "close the drawer of the cabinet", (dict(skill="close",
                                                                  articulation="drawer"),), True),
        ("put-bowl-on-plate", "put the bowl on the plate", (_pp("bowl", "plate"),), False),
        ("put-bowl-on-cabinet", "put the bowl on top of the cabinet",
         (_pp("bowl", "cabinet"),), False),
        ("put-red-cube-on-plate", "put the red cube on the plate",
         (_pp("red_cube", "plate"),), False),
        ("stack-blue-cube-on-red-cube", "stack the blue cube on the red cube",
         (_pp("blue_cube", "red_cube"),), False),
        ("push-red-cube-to-square", "push the red cube onto the green square",
         (dict(skill="push", object="red_cube", goal="zone"),), False),
        ("push-bowl-to-square", "push the bowl onto the green square",
         (dict(skill="push", object="bowl", goal="zone"),), False),
        ("put-blue-cube-in-drawer", "put the blue cube in the open drawer",
         (_pp("blue_cube", "drawer", "in"),), True),
        ("put-red-cube-on-cabinet", "put the red cube on top of the cabinet",
         (_pp("red_cube", "cabinet"),), False),
    ]
    return [TaskDef("tabletop-goal", n, ins, scene, st, drawer_open=op)
            for n, ins, st, op in spec]


# ---------------------------------------------------------------------------- long


def _long_tasks() -> list[TaskDef]:
    spec = [
        ("put-ketchup-and-mustard-in-basket", "put both the ketchup and the mustard in the basket",
         ("basket", "ketchup", "mustard", "milk"),
         (_pp("ketchup", "basket", "in"), _pp("mustard", "basket", "in")), False),
        ("put-milk-and-butter-in-basket", "put both the milk and the butter in the basket",
         ("basket", "milk", "butter", "orange_juice"),
         (_pp("milk", "basket", "in"), _pp("butter", "basket", "in")), False),
        ("put-bowl-on-plate-and-cube-in-basket",
         "put the bowl on the plate and the red cube in the basket",
         ("basket", "plate", "bowl", "red_cube"),
         (_pp("bowl", "plate"), _pp("red_cube", "basket", "in")), False),
        ("open-drawer-and-put-cube-inside", "open the drawer and put the red cube inside",
         ("cabinet", "red_cube", "bowl"),
         (dict(skill="open", articulation="drawer"), _pp("red_cube", "drawer", "in")), False),
        ("put-cube-in-drawer-and-close-it", "put the blue cube in the drawer and close it",
         ("cabinet", "blue_cube", "plate"),
         (_pp("blue_cube", "drawer", "in"), dict(skill="close", articulation="drawer")), True),
        ("stack-three-cubes",
         "stack the blue cube on the red cube and then the green cube on the blue cube",
         ("red_cube", "blue_cube", "green_cube"),
         (_pp("blue_cube", "red_cube"), _pp("green_cube", "blue_cube")), False),
        ("put-ketchup-on-plate-and-tomato-sauce-in-basket",
         "put the ketchup on the plate and the tomato sauce in the basket",
         ("basket", "plate", "ketchup", "tomato_sauce"),
         (_pp("ketchup", "plate"), _pp("tomato_sauce", "basket", "in")), False),
        ("push-bowl-to-square-and-put-cube-on-plate",
         "push the bowl onto the green square and put the red cube on the plate",
         ("zone", "bowl", "plate", "red_cube"),
         (dict(skill="push", object="bowl", goal="zone"), _pp("red_cube", "plate")), False),
        ("close-drawer-and-put-bowl-on-cabinet",
         "close the drawer and put the bowl on top of the cabinet",
         ("cabinet", "bowl", "red_cube"),
         (dict(skill="close", articulation="drawer"), _pp("bowl", "cabinet")), True),
        ("put-both-cubes-in-basket", "put both the red cube and the blue cube in the basket",
         ("basket", "red_cube", "blue_cube", "plate"),
         (_pp("red_cube", "basket", "in"), _pp("blue_cube", "basket", "in")), False),
    ]
    return [TaskDef("tabletop-long", n, ins, objs, st, drawer_open=op)
            for n, ins, objs, st, op in spec]


SUITES: dict[str, list[TaskDef]] = {
    "tabletop-spatial": _spatial_tasks(),
    "tabletop-object": _object_tasks(),
    "tabletop-goal": _goal_tasks(),
    "tabletop-long": _long_tasks(),
}
TASKS: dict[str, TaskDef] = {t.task_id: t for tasks in SUITES.values() for t in tasks}
