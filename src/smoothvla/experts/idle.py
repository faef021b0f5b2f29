"""Idle-action filter for scripted demonstrations (RL4VLA, App. A.2).

Motion-planner demonstrations contain steps where the arm barely moves: the first and last
steps of every rest-to-rest move, waits for the fingers to close. A policy cloned from them
learns to output near-zero actions in near-rest states and then stays there ("gets stuck").
RL4VLA drops every action whose position delta is under 0.01 m and whose rotation delta
is under 0.06 rad, which removed about a third of its planner's actions.

Here the thresholds are in metres and radians of commanded motion (action * action_scale).
An action is idle when both deltas are under their thresholds AND its gripper command
equals the previous action's (a gripper change is never idle; this is also what OpenVLA's
LIBERO no-op filter keeps). Our defaults, 1 mm and 0.01 rad, drop only true rests: the
expert's speed-limited moves command 6 to 12 mm per step, and RL4VLA's 10 mm threshold
would delete most of its careful (slow) descents. Pass `pos_threshold=0.01,
rot_threshold=0.06` to reproduce RL4VLA exactly.

Filtering drops (observation, action) pairs, so a filtered demo is no longer uniformly
sampled in time: measure the expert's jerk on unfiltered rollouts (as
`benchmarks/expert_success.py` does), not on filtered files.
"""

from __future__ import annotations

import numpy as np


def idle_mask(actions: np.ndarray, pos_scale: float = 0.05, rot_scale: float = 0.5,
              pos_threshold: float = 1e-3, rot_threshold: float = 0.01) -> np.ndarray:
    """Which actions are idle.

    Args:
        actions: (T, 7) delta actions in [-1, 1] (position 3, rotation 3, gripper 1).
        pos_scale, rot_scale: metres / radians per unit action.
        pos_threshold: position deltas (m) strictly below this are "not moving".
        rot_threshold: rotation deltas (rad) strictly below this are "not turning".

    Returns:
        (T,) bool, True where the action is idle (to be dropped).
    """
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != 7:
        raise ValueError(f"idle_mask: actions must have shape (T, 7), got {actions.shape}")
    if pos_threshold < 0 or rot_threshold < 0:
        raise ValueError("idle_mask: thresholds must be >= 0")
    pos = np.linalg.norm(actions[:, :3], axis=1) * pos_scale
    rot = np.linalg.norm(actions[:, 3:6], axis=1) * rot_scale
    gripper = actions[:, 6]
    same_gripper = np.ones(len(actions), dtype=bool)
    same_gripper[1:] = np.abs(np.diff(gripper)) < 1e-6
    # The first action has no predecessor: keep it unless it is a no-op on all axes.
    if len(actions):
        same_gripper[0] = True
    return (pos < pos_threshold) & (rot < rot_threshold) & same_gripper


def filter_idle(actions: np.ndarray, obs: dict[str, np.ndarray], **thresholds: float
                ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Drop idle (observation, action) pairs.

    Args:
        actions: (T, 7).
        obs: {key: (T, ...)} observations, row t being the state before action t.
        thresholds: passed to `idle_mask`.

    Returns:
        (actions (T', 7), obs {key: (T', ...)}, keep (T,) bool). At least one step is kept.
    """
    idle = idle_mask(actions, **thresholds)
    keep = ~idle
    if not keep.any():
        keep[0] = True
    return actions[keep], {k: np.asarray(v)[keep] for k, v in obs.items()}, keep
