"""The object catalog of the tabletop suite: primitive-shaped groceries, bowls, cubes and
receptacles, each one convex collision geom (or a few boxes for the basket and cabinet).

Sizes are half extents in metres. Every graspable object fits the Panda's 0.08 m opening
across its narrow horizontal axis and is at most 0.04 m tall above its centre, so a grasp at
the centre keeps the hand clear of the object's top.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class ObjectDef:
    """One object. `shape` is box (size = 3 half extents), cylinder (radius, half height) or
    sphere (radius,); `kind` is free (a free body), or a fixed receptacle kind
    (basket, cabinet, ramekin, cookie_box, zone); `plate` and `bowl` are free bodies too."""

    name: str
    display: str
    shape: str
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]
    mass: float = 0.1
    graspable: bool = True
    kind: str = "free"

    @property
    def half_size(self) -> np.ndarray:
        """Axis-aligned half extents (3,) in the object frame."""
        if self.kind == "basket":
            hx, hy, hz = self.size
            return np.array([hx + BASKET_WALL, hy + BASKET_WALL, hz])
        if self.kind == "cabinet":
            return np.array(CABINET_HALF)
        if self.shape == "box":
            return np.array(self.size[:3], dtype=float)
        if self.shape == "cylinder":
            return np.array([self.size[0], self.size[0], self.size[1]])
        return np.full(3, self.size[0])

    @property
    def grasp_width(self) -> float:
        """Width across the narrower horizontal axis, metres."""
        hs = self.half_size
        return float(2 * min(hs[0], hs[1]))

    @property
    def footprint(self) -> float:
        """Radius of the circle that holds the object's footprint (for layout spacing)."""
        if self.shape in ("cylinder", "sphere") and self.kind != "basket":
            return float(self.size[0])
        hs = self.half_size
        return float(np.hypot(hs[0], hs[1]))


def _rgba(r: float, g: float, b: float) -> tuple[float, float, float, float]:
    return (r, g, b, 1.0)


# tabletop-object's ten groceries (LIBERO-Object has ten too).
GROCERIES = {
    o.name: o
    for o in [
        ObjectDef("ketchup", "ketchup", "cylinder", (0.022, 0.04), _rgba(0.8, 0.08, 0.06)),
        ObjectDef("mustard", "mustard", "cylinder", (0.021, 0.038), _rgba(0.95, 0.8, 0.1)),
        ObjectDef("milk", "milk", "box", (0.024, 0.024, 0.04), _rgba(0.95, 0.95, 0.92)),
        ObjectDef("butter", "butter", "box", (0.032, 0.02, 0.016), _rgba(0.98, 0.9, 0.55)),
        ObjectDef("cream_cheese", "cream cheese", "box", (0.028, 0.022, 0.017),
                  _rgba(0.45, 0.6, 0.85)),
        ObjectDef("tomato_sauce", "tomato sauce", "cylinder", (0.025, 0.032),
                  _rgba(0.9, 0.35, 0.15)),
        ObjectDef("orange_juice", "orange juice", "box", (0.023, 0.023, 0.038),
                  _rgba(1.0, 0.55, 0.05)),
        ObjectDef("alphabet_soup", "alphabet soup", "cylinder", (0.027, 0.03),
                  _rgba(0.85, 0.75, 0.6)),
        ObjectDef("bbq_sauce", "bbq sauce", "cylinder", (0.019, 0.04), _rgba(0.35, 0.15, 0.08)),
        ObjectDef("salad_dressing", "salad dressing", "cylinder", (0.02, 0.036),
                  _rgba(0.3, 0.65, 0.25)),
        ObjectDef("chocolate_pudding", "chocolate pudding", "box", (0.026, 0.018, 0.02),
                  _rgba(0.3, 0.18, 0.1)),
        ObjectDef("cookies", "cookies", "box", (0.03, 0.021, 0.022), _rgba(0.8, 0.6, 0.35)),
    ]
}

# Held out of every training task: the "unseen objects" perturbation swaps these in.
UNSEEN_OBJECTS = {
    o.name: o
    for o in [
        ObjectDef("soda_can", "soda can", "cylinder", (0.024, 0.034), _rgba(0.75, 0.78, 0.8)),
        ObjectDef("tennis_ball", "tennis ball", "sphere", (0.028,), _rgba(0.8, 0.95, 0.2)),
        ObjectDef("toy_block", "purple block", "box", (0.02, 0.03, 0.02), _rgba(0.5, 0.2, 0.7)),
        ObjectDef("spam_tin", "spam tin", "box", (0.03, 0.02, 0.018), _rgba(0.15, 0.25, 0.6)),
        ObjectDef("pepper_shaker", "pepper shaker", "cylinder", (0.017, 0.04),
                  _rgba(0.08, 0.08, 0.08)),
        ObjectDef("yogurt", "yogurt cup", "cylinder", (0.028, 0.028), _rgba(0.9, 0.85, 0.95)),
        ObjectDef("lemon", "lemon", "sphere", (0.026,), _rgba(0.98, 0.95, 0.2)),
        ObjectDef("rubber_duck", "rubber duck", "box", (0.025, 0.022, 0.024),
                  _rgba(1.0, 0.85, 0.0)),
    ]
}

BASKET_WALL = 0.006
CABINET_HALF = (0.08, 0.11, 0.065)  # outer half extents of the drawer cabinet
DRAWER_INNER = (0.055, 0.08, 0.025)  # inner half extents of the drawer box
DRAWER_TRAVEL = 0.14  # slide range, metres
DRAWER_OPEN = 0.12  # qpos counted as fully open

SCENE_OBJECTS = {
    o.name: o
    for o in [
        ObjectDef("bowl", "bowl", "cylinder", (0.032, 0.022), _rgba(0.12, 0.12, 0.13), 0.15),
        ObjectDef("bowl_1", "black bowl", "cylinder", (0.032, 0.022), _rgba(0.12, 0.12, 0.13),
                  0.15),
        ObjectDef("bowl_2", "black bowl", "cylinder", (0.032, 0.022), _rgba(0.12, 0.12, 0.13),
                  0.15),
        ObjectDef("red_cube", "red cube", "box", (0.021, 0.021, 0.021), _rgba(0.85, 0.1, 0.1)),
        ObjectDef("blue_cube", "blue cube", "box", (0.021, 0.021, 0.021), _rgba(0.1, 0.3, 0.9)),
        ObjectDef("green_cube", "green cube", "box", (0.021, 0.021, 0.021),
                  _rgba(0.1, 0.7, 0.2)),
        ObjectDef("plate", "plate", "cylinder", (0.075, 0.006), _rgba(0.93, 0.93, 0.9), 0.3,
                  graspable=False),
        ObjectDef("basket", "basket", "box", (0.075, 0.095, 0.035), _rgba(0.6, 0.45, 0.25),
                  graspable=False, kind="basket"),
        ObjectDef("cabinet", "cabinet", "box", CABINET_HALF, _rgba(0.55, 0.35, 0.2),
                  graspable=False, kind="cabinet"),
        ObjectDef("ramekin", "ramekin", "cylinder", (0.035, 0.02), _rgba(0.9, 0.88, 0.8),
                  graspable=False, kind="ramekin"),
        ObjectDef("cookie_box", "cookie box", "box", (0.06, 0.045, 0.02),
                  _rgba(0.85, 0.25, 0.3), graspable=False, kind="cookie_box"),
        ObjectDef("zone", "green square", "box", (0.045, 0.045, 0.0008), _rgba(0.2, 0.8, 0.3),
                  graspable=False, kind="zone"),
    ]
}

# The "unseen receptacles" perturbation recolours and resizes these, with a new name.
UNSEEN_RECEPTACLES = {
    "plate": [("tray", (0.35, 0.55, 0.75), 1.1), ("saucer", (0.85, 0.7, 0.3), 0.9)],
    "basket": [("crate", (0.3, 0.3, 0.35), 1.05), ("bin", (0.2, 0.5, 0.6), 0.95)],
    "bowl": [("cup", (0.8, 0.8, 0.85), 0.9)],
    "cabinet": [("dresser", (0.85, 0.85, 0.8), 1.0)],
}

CATALOG = {**GROCERIES, **UNSEEN_OBJECTS, **SCENE_OBJECTS}


def get_object(name: str) -> ObjectDef:
    """The catalog entry of an object name; a clear error for unknown names."""
    if name not in CATALOG:
        raise ValueError(f"unknown object {name!r}; known: {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def restyle(obj: ObjectDef, name: str, display: str, rgb: tuple[float, float, float],
            scale: float) -> ObjectDef:
    """A renamed, recoloured, scaled copy (unseen receptacles)."""
    size = tuple(s * scale for s in obj.size)
    return replace(obj, name=name, display=display, rgba=(*rgb, 1.0), size=size)
