"""A tiny kinematic stand-in for the tabletop env: exactly the contract the experts read.

Like the real env, actions move an accumulated target pose; the end effector closes the
fraction `lag` of its distance to the target each step (a lagging controller), boxes
attach to the closed fingers, fall onto what is below when released, are carried along
when the fingers push into them, and a drawer slides with closed fingertips pressed on
(or pushing) its handle.
"""

from __future__ import annotations

import numpy as np

from smoothvla.geometry import matrix_to_quat, quat_mul, quat_to_matrix

DOWN = matrix_to_quat(np.diag([1.0, -1.0, -1.0]))  # gripper z axis pointing at the table
MAX_OPEN = 0.08


def _axis_angle_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rotvec / angle
    return np.array([np.cos(angle / 2), *(np.sin(angle / 2) * axis)])


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class StandInEnv:
    control_dt = 0.05
    action_scale = dict(pos=0.05, rot=0.5)

    def __init__(self, objects: dict, plan: list, articulations: dict | None = None,
                 lag: float = 0.85, max_steps: int = 600, ee_start=(0.0, 0.0, 0.3)):
        self._init_objects = objects
        self._init_arts = articulations or {}
        self.plan = plan
        self.lag = lag
        self.max_steps = max_steps
        self.ee_start = np.asarray(ee_start, dtype=np.float64)
        self.reset()

    def reset(self):
        self.ee_pos = self.ee_start.copy()
        self.ee_quat = DOWN.copy()
        self.target = self.ee_pos.copy()
        self.opening = MAX_OPEN
        self.held: str | None = None
        self.held_offset = np.zeros(3)
        self.objects = {
            name: dict(pos=np.asarray(o["pos"], float), quat=_yaw_quat(o.get("yaw", 0.0)),
                       half_size=np.asarray(o["half_size"], float),
                       grasp_width=2 * min(o["half_size"][:2]), graspable=o.get("graspable", True))
            for name, o in self._init_objects.items()
        }
        self.arts = {name: dict(a) for name, a in self._init_arts.items()}
        self.steps = 0
        self.positions = [self.ee_pos.copy()]
        return self.privileged_state()

    def privileged_state(self) -> dict:
        arts = {}
        for name, a in self.arts.items():
            axis = np.asarray(a["axis"], float)
            arts[name] = dict(qpos=a["qpos"], open_qpos=a["open_qpos"],
                              closed_qpos=a["closed_qpos"], axis=axis,
                              handle_pos=np.asarray(a["handle_base"], float) + axis * a["qpos"])
        return dict(ee_pos=self.ee_pos.copy(), ee_quat=self.ee_quat.copy(), gripper=self.opening,
                    joint_pos=np.zeros(7),
                    objects={n: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                 for k, v in o.items()} for n, o in self.objects.items()},
                    articulations=arts)

    def _inside(self, o, point, pad):
        rel = quat_to_matrix(o["quat"]).T @ (point - o["pos"])
        return bool(np.all(np.abs(rel) <= o["half_size"] + pad))

    def _support_top(self, name, xy):
        top = 0.0
        for other, o in self.objects.items():
            if other == name:
                continue
            rel = quat_to_matrix(o["quat"]).T @ np.array([*(xy - o["pos"][:2]), 0.0])
            if np.all(np.abs(rel[:2]) <= o["half_size"][:2]):
                top = max(top, o["pos"][2] + o["half_size"][2] * o.get("floor", 1.0))
        return top

    def step(self, action, render=True):
        action = np.clip(np.asarray(action, float), -1, 1)
        assert action.shape == (7,)
        self.target = self.target + action[:3] * self.action_scale["pos"]
        self.target[2] = max(self.target[2], 0.005)
        new_pos = self.ee_pos + self.lag * (self.target - self.ee_pos)
        self.ee_quat = quat_mul(_axis_angle_quat(action[3:6] * 0.5), self.ee_quat)
        self.ee_quat /= np.linalg.norm(self.ee_quat)
        delta = new_pos - self.ee_pos
        # pushing: a non-held box the fingertips enter is carried horizontally
        for name, o in self.objects.items():
            if name != self.held and self._inside(o, new_pos, 0.012):
                o["pos"][:2] += delta[:2]
        # drawers: closed fingertips pressed on the handle's top drag it both ways; at handle
        # height they can only push it in
        for a in self.arts.values():
            axis = np.asarray(a["axis"], float)
            handle = np.asarray(a["handle_base"], float) + axis * a["qpos"]
            rel = self.ee_pos - handle
            near = self.opening < 0.01 and np.linalg.norm(rel[:2]) < 0.03
            pressing = near and abs(rel[2] - 0.0145) < 0.005
            pushing = near and abs(rel[2]) < 0.01 and delta @ axis < 0
            if pressing or pushing:
                lo, hi = sorted((a["closed_qpos"], a["open_qpos"]))
                a["qpos"] = float(np.clip(a["qpos"] + delta @ axis, lo, hi))
        self.ee_pos = new_pos
        closing = action[6] > 0
        if closing:
            width = None
            if self.held is None:
                for name, o in self.objects.items():
                    if o["graspable"] and self._inside(o, self.ee_pos, 0.005):
                        width = o["grasp_width"]
                        if self.opening <= width + 1e-3:
                            self.held = name
                            self.held_offset = o["pos"] - self.ee_pos
            else:
                width = self.objects[self.held]["grasp_width"]
            floor = width if width is not None else 0.0
            self.opening = max(floor, self.opening - 0.01 * action[6])
        else:
            self.opening = min(MAX_OPEN, self.opening + 0.01 * -action[6])
            held_width = self.objects[self.held]["grasp_width"] if self.held else 0.0
            if self.held is not None and self.opening > held_width + 2e-3:
                o = self.objects[self.held]
                o["pos"][2] = self._support_top(self.held, o["pos"][:2]) + o["half_size"][2]
                self.held = None
        if self.held is not None:
            self.objects[self.held]["pos"] = self.ee_pos + self.held_offset
        self.steps += 1
        self.positions.append(self.ee_pos.copy())
        return self.privileged_state()

    def success(self) -> bool:
        for i, stage in enumerate(self.plan):
            later = [st.get("articulation") for st in self.plan[i + 1:]]
            if stage.get("articulation") in later:
                continue  # a later stage moves the same articulation again
            if stage["skill"] == "pick_place":
                o, t = self.objects[stage["object"]], self.objects[stage["target"]]
                rel = np.abs(o["pos"][:2] - t["pos"][:2])
                if self.held == stage["object"] or np.any(rel > t["half_size"][:2]):
                    return False
            elif stage["skill"] == "push":
                if np.linalg.norm(self.objects[stage["object"]]["pos"][:2] - stage["goal"]) > 0.03:
                    return False
            else:
                a = self.arts[stage["articulation"]]
                goal = a["open_qpos"] if stage["skill"] == "open" else a["closed_qpos"]
                if abs(a["qpos"] - goal) > 0.1 * abs(a["open_qpos"] - a["closed_qpos"]):
                    return False
        return True


def run_expert(env: StandInEnv, expert) -> bool:
    state = env.reset()
    expert.reset()
    for _ in range(env.max_steps):
        action = expert.act(state)
        assert np.all(np.abs(action) <= 1.0 + 1e-9), action
        state = env.step(action)
        if expert.done:
            break
    return env.success()


def crash_job(*args, **kwargs):
    """A collect job whose worker process dies without a word (as on a segfault)."""
    import os

    os._exit(3)
