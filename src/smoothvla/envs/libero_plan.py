"""Expert stages from a LIBERO task's BDDL goal (the `plan` of `LiberoEnv`): what a LIBERO
task asks for, in the stage vocabulary the scripted experts execute. It sits beside the
`envs/libero` package, not in it, because that package needs the LIBERO install and the
experts read these stages without it.

Goal predicates become stages of the tabletop expert contract (`experts/skills.py`):

    (On a b), b an object            -> libero_pick_place(a, b, mode="on")
    (In a b_contain_region)          -> libero_pick_place(a, b, mode="in")  (b owns the region)
    (On a region), (In a region)     -> libero_pick_place(a, region, mode)  (fixture and table
                                        regions are site boxes in the privileged state)
    (Open x), (Close x),             -> libero_articulate(x, predicate)   (a drawer's region,
    (Turnon x), (Turnoff x)             a microwave, a stove; `experts/libero/articulated.py`)

Stages run in a workable order, not the BDDL order: whatever must be opened first
(explicit Open goals, and the drawer or microwave an In goal puts something into), then
Turnon / Turnoff, then the pick-and-place goals in BDDL order, then Close goals. So "put
the bowl in the bottom drawer and close it" places before closing, and "open the top
drawer and put the bowl inside" (whose only goal is In) opens the drawer first, all the
way (`full`: a bowl only just fits between the drawer's front and the handles above). A stage
whose predicate already holds does nothing (LIBERO-10's "put both moka pots on the stove"
starts with the stove on). Objects that share a region target get `slot` = (index, count):
places spread along the region (`libero_pick_place`).
"""

from __future__ import annotations

from smoothvla.errors import ExpertError

ARTICULATED = ("open", "close", "turnon", "turnoff")


def region_owner(region: str, names: list[str]) -> str | None:
    """The object or fixture whose name prefixes `region` (longest match), if any."""
    owners = [n for n in names if region.startswith(n + "_")]
    return max(owners, key=len) if owners else None


def _container(target: str, articulated: list[str]) -> str | None:
    """The articulation that must be open to put something into `target`, if any."""
    if target in articulated:
        return target
    return region_owner(target, articulated)


def plan_from_goal(goal: list[list[str]], objects: list[str], fixtures: list[str],
                   articulated: list[str] | None = None) -> list[dict]:
    """Stages for the goal predicates: opens, turns, pick-and-places (BDDL order), closes.

    `articulated` names what the env tracks a joint of (`LiberoEnv` passes its drawer
    regions, microwaves and stoves); an articulated predicate on anything else raises
    `ExpertError`, as does an unknown predicate.
    """
    articulated = list(articulated or [])
    opens: list[dict] = []
    turns: list[dict] = []
    places: list[dict] = []
    closes: list[dict] = []
    for predicate in goal:
        kind = predicate[0].lower()
        if kind in ARTICULATED:
            if len(predicate) != 2:
                raise ExpertError(f"unknown goal predicate {predicate}")
            name = predicate[1]
            if name not in articulated:
                raise ExpertError(f"goal {predicate}: no joint known for {name!r} (articulated "
                                  f"goals need the env's articulations: {articulated})")
            stage = {"skill": "libero_articulate", "articulation": name, "predicate": kind}
            {"open": opens, "close": closes}.get(kind, turns).append(stage)
            continue
        if kind not in ("on", "in") or len(predicate) != 3:
            raise ExpertError(f"unknown goal predicate {predicate}")
        obj, target = predicate[1], predicate[2]
        if obj not in objects:
            raise ExpertError(f"goal {predicate}: {obj!r} is not a movable object")
        mode = kind
        container = _container(target, articulated) if kind == "in" else None
        if container is not None:
            opens.append({"skill": "libero_articulate", "articulation": container,
                          "predicate": "open", "full": True})
        if target not in objects and target not in fixtures:
            owner = region_owner(target, objects)
            # The whole inside of an object ("basket_1_contain_region") is the object
            # itself; a named part ("desk_caddy_1_back_contain_region") stays a region.
            if owner is not None and target == f"{owner}_contain_region":
                target = owner
                mode = "in"
        places.append({"skill": "libero_pick_place", "object": obj, "target": target,
                       "mode": mode})
    # Several objects on one region (two moka pots on the stove) get separate slots.
    targets = [p["target"] for p in places]
    for i, stage in enumerate(places):
        n = targets.count(stage["target"])
        if n > 1 and stage["target"] not in objects:
            stage["slot"] = (targets[:i].count(stage["target"]), n)
    # An explicit Open of a container merges into the full open the In goal asks for.
    full = {s["articulation"] for s in opens if s.get("full")}
    opens = [{**s, "full": True} if s["articulation"] in full else s for s in opens]
    unique: list[dict] = []
    for stage in opens + turns + places + closes:
        if stage not in unique:
            unique.append(stage)
    return unique
