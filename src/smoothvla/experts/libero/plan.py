"""Expert stages from a LIBERO task's BDDL goal (the `plan` of `LiberoEnv`).

Goal predicates become stages of the tabletop expert contract (`experts/skills.py`):

    (On a b), b an object            -> libero_pick_place(a, b, mode="on")
    (In a b_contain_region)          -> libero_pick_place(a, b, mode="in")  (b owns the region)
    (On a region), (In a region)     -> libero_pick_place(a, region, mode)  (fixture and table
                                        regions are site boxes in the privileged state)
The skill is `experts/libero/skills.py` (grasp choice in clutter, rim grasps).
Articulated goals (Open, Close, Turnon, Turnoff) have no skill yet: `plan_from_goal` raises
`ExpertError` naming them, so a collection run fails loudly instead of writing bad demos.
"""

from __future__ import annotations

from smoothvla.experts import ExpertError

UNSUPPORTED = ("open", "close", "turnon", "turnoff")


def region_owner(region: str, names: list[str]) -> str | None:
    """The object or fixture whose name prefixes `region` (longest match), if any."""
    owners = [n for n in names if region.startswith(n + "_")]
    return max(owners, key=len) if owners else None


def plan_from_goal(goal: list[list[str]], objects: list[str], fixtures: list[str]) -> list[dict]:
    """Stages for the goal predicates in their BDDL order."""
    stages = []
    for predicate in goal:
        kind = predicate[0].lower()
        if kind in UNSUPPORTED:
            raise ExpertError(f"no LIBERO skill for goal predicate {predicate}: articulated "
                              f"goals ({', '.join(UNSUPPORTED)}) are not scripted yet")
        if kind not in ("on", "in") or len(predicate) != 3:
            raise ExpertError(f"unknown goal predicate {predicate}")
        obj, target = predicate[1], predicate[2]
        if obj not in objects:
            raise ExpertError(f"goal {predicate}: {obj!r} is not a movable object")
        mode = kind
        if target not in objects and target not in fixtures:
            owner = region_owner(target, objects)
            # The whole inside of an object ("basket_1_contain_region") is the object
            # itself; a named part ("desk_caddy_1_back_contain_region") stays a region.
            if owner is not None and target == f"{owner}_contain_region":
                target = owner
                mode = "in"
        stages.append({"skill": "libero_pick_place", "object": obj, "target": target, "mode": mode})
    return stages
