"""Shared helpers for the tabletop env tests."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from smoothvla.envs.tabletop.objects import DRAWER_INNER  # noqa: E402

IDLE = np.array([0, 0, 0, 0, 0, 0, -1.0])  # hold still, gripper open


def _in_drawer(env, name: str) -> bool:
    state = env.privileged_state()
    if "drawer" not in state["objects"]:
        return False
    c = state["objects"]["drawer"]["pos"]
    p = state["objects"][name]["pos"]
    return abs(p[0] - c[0]) <= DRAWER_INNER[0] and abs(p[1] - c[1]) <= DRAWER_INNER[1]


def teleport_to_success(env) -> None:
    """Teleport objects / set articulations so that every stage of `env.plan` holds.

    The test-side mirror of the success predicates: objects are put on/in their targets,
    pushed objects onto their goals, drawers opened or closed (carrying what is inside).
    """
    for stage in env.plan:
        state = env.privileged_state()
        objects = state["objects"]
        skill = stage["skill"]
        if skill in ("open", "close"):
            art = state["articulations"][stage["articulation"]]
            q = art["open_qpos"] if skill == "open" else art["closed_qpos"]
            inside = [n for n, o in objects.items() if o["graspable"] and _in_drawer(env, n)]
            shift = art["axis"] * (q - art["qpos"])
            env.set_articulation(stage["articulation"], q)
            for name in inside:
                env.set_object_pose(name, objects[name]["pos"] + shift)
            continue
        name = stage["object"]
        obj = objects[name]
        if skill == "push":
            gx, gy = stage["goal"]
            env.set_object_pose(name, np.array([gx, gy, obj["pos"][2]]))
            continue
        target = objects[stage["target"]]
        upright = np.array([1.0, 0, 0, 0])
        z_half = obj["half_size"][2]
        if stage["target"] == "drawer":
            z = target["pos"][2] - target["half_size"][2] + z_half + 0.001
        elif stage["mode"] == "in":  # basket: rest on its floor
            z = target["pos"][2] - target["half_size"][2] + 0.006 + z_half + 0.001
        else:
            z = target["pos"][2] + target["half_size"][2] + z_half + 0.001
        env.set_object_pose(name, np.array([target["pos"][0], target["pos"][1], z]), upright)


@pytest.fixture
def teleport():
    return teleport_to_success
