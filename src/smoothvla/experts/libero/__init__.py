"""Scripted experts for the real LIBERO suites: BDDL goals -> stages of the tabletop skills.

Pick-and-place (`skills.py`; into the microwave through its front opening: `door.py`) and
articulated goals: drawers, the stove knob, the microwave door (`articulated.py`); the stage
order is `smoothvla.envs.libero_plan`'s.

`make_expert(env)` has the shape of `smoothvla.experts.make_expert`: the LIBERO env exposes
`plan` (from `plan_from_goal`), `action_scale`, `control_dt` and `privileged_state()`, so
the generic `experts.episode.run_episode` and `smoothvla collect` drive it unchanged.
"""

from __future__ import annotations

from typing import Any

from smoothvla.experts import Expert, ExpertConfig, MotionLimits
from smoothvla.experts.libero.articulated import joint_target, libero_articulate, satisfied
from smoothvla.experts.libero.skills import choose_grasp, libero_pick_place

# The goal planner is LIBERO task semantics (envs); re-exported for the experts' callers.
from smoothvla.envs.libero_plan import plan_from_goal, region_owner


def make_expert(env: Any, config: ExpertConfig | None = None) -> Expert:
    """An `Expert` for a `LiberoEnv` (tunables from `LIBERO_CONFIG` unless given)."""
    return Expert(env.plan, env.action_scale, env.control_dt, config or LIBERO_CONFIG)


# robosuite's OSC adds each commanded delta to the *measured* pose (goal = ee + delta), so the
# expert must command setpoint - measured pose: re-anchoring its copy of the target on the
# measured pose at every step (thresholds 0) does exactly that.
# Free-space speed 0.4 m/s (tabletop: 0.25): LIBERO's step limits (220 steps = 11 s for
# spatial) leave little slack for the longer LIBERO reaches; jerk limit unchanged.
LIBERO_CONFIG = ExpertConfig(limits=MotionLimits(max_vel=0.4, max_acc=1.2),
                             reanchor_pos=0.0, reanchor_rot=0.0)

__all__ = ["LIBERO_CONFIG", "choose_grasp", "joint_target", "libero_articulate",
           "libero_pick_place", "make_expert", "plan_from_goal", "region_owner", "satisfied"]
