"""The `Expert`: drives the stages of a tabletop plan with jerk-limited moves.

`expert = make_expert(env); action = expert.act(env.privileged_state())` until `expert.done`.
The skills themselves (pick_place, push, open, close) live in `experts/skills.py`; this
module holds what they share: the configuration, the commanded-pose bookkeeping, and the
primitive phases (move, grip, hold).

Privileged state (the env contract):
    ee_pos (3,), ee_quat (4, wxyz), gripper (finger opening, m), joint_pos (7,),
    objects = {name: dict(pos, quat, half_size, grasp_width, graspable)},
    articulations = {name: dict(qpos, open_qpos, closed_qpos, handle_pos, axis)}
Plan stages: dict(skill="pick_place", object, target, mode="on"|"in"),
    dict(skill="push", object, goal=(x, y)), dict(skill="open"|"close", articulation).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smoothvla.errors import ExpertError
from smoothvla.experts.motion import (
    GripperRamp,
    MotionLimits,
    down_quat,
    plan_segment,
    pose_action,
    yaw_of,
)
from smoothvla.geometry import (
    axis_angle_quat,
    matrix_to_quat,
    quat_conj,
    quat_mul,
    quat_to_axis_angle,
    quat_to_matrix,
)

Actions = Iterator[np.ndarray]
OPEN, CLOSE = -1.0, 1.0


def pointing_down(quat: np.ndarray) -> np.ndarray:
    """The orientation nearest to `quat` whose z axis (the approach axis) points down.

    Keeps the direction of the x axis projected on the table; (4,) w x y z.
    """
    rot = quat_to_matrix(quat)
    x = np.array([rot[0, 0], rot[1, 0], 0.0])
    if np.linalg.norm(x) < 1e-6:  # x axis vertical: fall back on the y axis
        x = np.cross(np.array([rot[0, 1], rot[1, 1], 0.0]), [0.0, 0.0, -1.0])
    x /= np.linalg.norm(x)
    z = np.array([0.0, 0.0, -1.0])
    return matrix_to_quat(np.stack([x, np.cross(z, x), z], axis=1))


@dataclass(frozen=True)
class ExpertConfig:
    """Tunables of the scripted expert (distances in metres).

    Attributes:
        limits: jerk-limited motion limits for free-space moves.
        careful_speed: speed factor for moves near objects (descend, place, push, pull).
        clearance: height kept above every object top during transfers.
        hover: height above the object top where grasps and releases start.
        place_margin: gap between the held object's bottom and the support when placing "on".
        drop_height: gap between the held object's bottom and a container's rim for "in".
        grasp_depth: how far below the object top the fingertips close (capped at its centre).
        min_grasp_height: lowest fingertip height above the object's bottom.
        push_standoff: free gap behind the object before a push starts.
        push_height: fingertip height above the object's bottom while pushing (lower for
            objects shorter than this plus the pad half height).
        handle_half_thickness: half thickness of a drawer's handle bar.
        handle_press: how far below the handle's top the fingertips are commanded when
            dragging a drawer open (the press that makes friction pull it).
        drawer_front_pad, drawer_front_height: size of the box standing for a drawer's
            front panel and handle (see `_obstacles`).
        drawer_overshoot: extra travel commanded past the open/closed position.
        push_gripper: gripper command while pushing (0 = half open: the pads touch the
            object at two points about 3 to 6 cm apart).
        push_lateral_tol: sideways offset of the fingertip from the line through the
            object's centre beyond which a push re-approaches from behind.
        finger_radius: half thickness of the closed fingers, for push contact.
        gripper_ramp_steps: control steps for the gripper command to go from open to closed.
        grip_min_steps, grip_max_steps: bounds on the wait for the fingers to stop moving.
        settle_tol: position error under which a move counts as reached.
        settle_max_steps: extra steps spent converging at the end of a move.
        grasp_retries: re-attempts after a grasp that failed (the object moved during the
            approach, the fingers closed on nothing, or the object did not rise).
        hand_half: half extents (m) of the hand body across and along the finger axis.
        hand_height: height of the hand body's lowest point above the fingertips.
        reanchor_pos, reanchor_rot: when the measured pose lags the commanded target by more
            than this (m, rad), the env restarts its target from the measured pose; the
            expert's copy of the target does the same.
    """

    limits: MotionLimits = field(default_factory=MotionLimits)
    careful_speed: float = 0.5
    clearance: float = 0.06
    hover: float = 0.06
    place_margin: float = 0.01
    drop_height: float = 0.03
    grasp_depth: float = 0.02
    min_grasp_height: float = 0.016
    push_standoff: float = 0.03
    push_lateral_tol: float = 0.015
    push_height: float = 0.026
    push_gripper: float = 0.0
    handle_half_thickness: float = 0.006
    handle_press: float = 0.004
    drawer_overshoot: float = 0.01
    drawer_front_pad: float = 0.025
    drawer_front_height: float = 0.09
    finger_radius: float = 0.012
    gripper_ramp_steps: int = 4
    grip_min_steps: int = 4
    grip_max_steps: int = 20
    settle_tol: float = 0.004
    settle_max_steps: int = 8
    grasp_retries: int = 3
    reanchor_pos: float = 0.03
    hand_half: tuple[float, float] = (0.025, 0.095)
    hand_height: float = 0.046
    reanchor_rot: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.careful_speed <= 1:
            raise ValueError(f"careful_speed must be in (0, 1], got {self.careful_speed}")
        if self.gripper_ramp_steps < 1 or self.grip_max_steps < self.grip_min_steps:
            raise ValueError("gripper_ramp_steps must be >= 1 and grip_max_steps >= grip_min_steps")


class Expert:
    """Drives the stages of `plan` in order: `action = expert.act(state)` until `expert.done`.

    Args:
        plan: the env's stage list (`env.plan`).
        action_scale: dict(pos=metres, rot=radians) per unit action (`env.action_scale`).
        control_dt: seconds per control step.
        config: tunables.
    """

    def __init__(self, plan: list[dict[str, Any]], action_scale: dict[str, float],
                 control_dt: float, config: ExpertConfig | None = None):
        skills = _skills(plan)
        for stage in plan:
            if stage.get("skill") not in skills:
                raise ExpertError(f"no skill for stage {stage!r}; known: {sorted(skills)}")
        self.plan = [dict(stage) for stage in plan]
        self.pos_scale = float(action_scale["pos"])
        self.rot_scale = float(action_scale["rot"])
        self.dt = float(control_dt)
        self.cfg = config or ExpertConfig()
        self.reset()

    def reset(self) -> None:
        """Forget progress; the next `act` starts the plan from its first stage."""
        self.state: dict[str, Any] = {}
        self.stage_index = 0
        self.phase = "start"
        self.done = False
        self.gripper = GripperRamp(self.cfg.gripper_ramp_steps, OPEN)
        self._script: Actions | None = None
        self._reference = np.array([1.0, 0.0, 0.0, 0.0])
        self.target_pos = np.zeros(3)
        self.target_yaw = 0.0
        self.cmd_pos = np.zeros(3)
        self.cmd_quat = np.array([1.0, 0.0, 0.0, 0.0])

    def act(self, state: dict[str, Any]) -> np.ndarray:
        """The next action (7,) for the measured privileged state."""
        self.state = state
        if self._script is None:
            self._start(state)
        if not self.done:
            try:
                return next(self._script)
            except StopIteration:
                self.done = True
        return self.hold()

    # ----- low-level phases -----

    def _start(self, state: dict[str, Any]) -> None:
        # The yaw-0 reference: the orientation at reset, tilted to point straight down
        # (it already does unless the robot's initial pose was perturbed).
        self._reference = pointing_down(np.asarray(state["ee_quat"], dtype=np.float64))
        self.target_pos = np.asarray(state["ee_pos"], dtype=np.float64).copy()
        self.target_yaw = 0.0
        self.cmd_pos = self.target_pos.copy()
        self.cmd_quat = self._reference.copy()
        self.gripper = GripperRamp(self.cfg.gripper_ramp_steps,
                                   CLOSE if state.get("gripper", 1.0) < 0.01 else OPEN)
        self._script = self._run_plan()

    def _run_plan(self) -> Actions:
        skills = _skills(self.plan)
        for index, stage in enumerate(self.plan):
            self.stage_index = index
            args = {k: v for k, v in stage.items() if k != "skill"}
            yield from skills[stage["skill"]](self, **args)
        self.stage_index = len(self.plan)

    @property
    def ee_pos(self) -> np.ndarray:
        return np.asarray(self.state["ee_pos"], dtype=np.float64)

    @property
    def yaw(self) -> float:
        return yaw_of(np.asarray(self.state["ee_quat"], dtype=np.float64), self._reference)

    def hold(self) -> np.ndarray:
        """Action that moves the env's target pose onto the expert's current setpoint.

        The env accumulates commanded deltas into a target pose (it does not add them to the
        measured pose), so the action is the setpoint minus the expert's copy of that target,
        and the copy is advanced by the action actually sent. Following a jerk-limited
        setpoint sequence this way makes the commanded target itself jerk-limited.
        """
        pos = self.ee_pos
        quat = np.asarray(self.state["ee_quat"], dtype=np.float64)
        rot_lag = np.linalg.norm(quat_to_axis_angle(quat_mul(self.cmd_quat, quat_conj(quat))))
        if np.linalg.norm(self.cmd_pos - pos) > self.cfg.reanchor_pos or \
                rot_lag > self.cfg.reanchor_rot:
            self.cmd_pos, self.cmd_quat = pos.copy(), quat.copy()
        action = pose_action(self.cmd_pos, self.cmd_quat, self.target_pos,
                             down_quat(self.target_yaw, self._reference), self.gripper.step(),
                             self.pos_scale, self.rot_scale)
        self.cmd_pos = self.cmd_pos + action[:3] * self.pos_scale
        self.cmd_quat = quat_mul(axis_angle_quat(action[3:6] * self.rot_scale), self.cmd_quat)
        self.cmd_quat /= np.linalg.norm(self.cmd_quat)
        return action

    def move(self, goal: np.ndarray, yaw: float | None = None, speed: float = 1.0,
             phase: str = "move") -> Actions:
        """Jerk-limited straight move of the commanded pose to `goal`, then settle until the
        measured pose is within `settle_tol` (at most `settle_max_steps` steps)."""
        self.phase = phase
        goal = np.asarray(goal, dtype=np.float64)
        yaw_goal = self.target_yaw if yaw is None else yaw
        limits = self.cfg.limits if speed == 1.0 else self.cfg.limits.scaled(speed)
        rows = plan_segment(self.cmd_pos, goal, self.dt, limits, self.target_yaw, yaw_goal)
        for row in rows:
            self.target_pos, self.target_yaw = row[:3], float(row[3])
            yield self.hold()
        self.target_pos = goal
        for _ in range(self.cfg.settle_max_steps):
            if np.linalg.norm(self.ee_pos - goal) < self.cfg.settle_tol:
                break
            yield self.hold()

    def grip(self, command: float, phase: str) -> Actions:
        """Ramp the gripper to `command` and wait until the fingers stop moving."""
        self.phase = phase
        self.gripper.target = command
        previous = float(self.state["gripper"])
        for step in range(self.cfg.grip_max_steps):
            yield self.hold()
            opening = float(self.state["gripper"])
            if (self.gripper.settled and step + 1 >= self.cfg.grip_min_steps
                    and abs(opening - previous) < 2e-4):
                break
            previous = opening

    def wait(self, steps: int, phase: str = "wait") -> Actions:
        self.phase = phase
        for _ in range(steps):
            yield self.hold()


def _skills(plan: list[dict[str, Any]]) -> dict[str, Any]:
    """The skill registry (`experts.skills.SKILLS`), with the LIBERO skills registered first
    when `plan` has LIBERO stages (`experts.libero` adds them on import)."""
    from smoothvla.experts.skills import SKILLS  # skills import this module

    if any(str(stage.get("skill", "")).startswith("libero_") for stage in plan):
        import smoothvla.experts.libero  # noqa: F401

    return SKILLS


def suite_config(env: Any) -> ExpertConfig | None:
    """The expert tunables of the env's suite: `experts.libero.LIBERO_CONFIG` on the LIBERO
    suites, None (the defaults) elsewhere."""
    suite = str(getattr(getattr(env, "task", None), "suite", ""))
    if suite.startswith("libero-"):
        from smoothvla.experts.libero import LIBERO_CONFIG

        return LIBERO_CONFIG
    return None


def make_expert(env: Any, config: ExpertConfig | None = None) -> Expert:
    """An `Expert` for an env that exposes `plan`, `action_scale` and `control_dt`, with
    `config`, or when None the tunables of the env's suite (`suite_config`)."""
    return Expert(env.plan, env.action_scale, env.control_dt, config or suite_config(env))
