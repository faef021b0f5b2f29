"""Run the scripted expert for one episode of an env and record it in LIBERO's demo layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smoothvla.geometry import quat_to_axis_angle
from smoothvla.experts.skills import ExpertConfig, ExpertError, make_expert

# Steps the expert keeps holding after its plan ends, for a falling object to settle.
SETTLE_STEPS = 10


@dataclass
class Episode:
    """One expert rollout.

    Attributes:
        success: the env reported success.
        actions: (T, 7) executed actions.
        obs: LIBERO observation arrays over T steps (state before each action):
            ee_pos (T,3), ee_ori (T,3) axis-angle, ee_states (T,6), gripper_states (T,2),
            joint_states (T,7) and `<camera>_rgb` (T,H,W,3) uint8 when images are recorded.
        rewards: (T,) env rewards.
        ee_path: (T+1, 3) end-effector positions including the final state (for jerk).
        failure: why the expert gave up, or "" (timeouts read "max_steps").
    """

    success: bool
    actions: np.ndarray
    obs: dict[str, np.ndarray]
    rewards: np.ndarray
    ee_path: np.ndarray
    failure: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def _proprio(info: dict[str, Any]) -> dict[str, np.ndarray]:
    pos = np.asarray(info["ee_pos"], dtype=np.float64)
    ori = quat_to_axis_angle(np.asarray(info["ee_quat"], dtype=np.float64))
    opening = float(info["gripper"])
    return {
        "ee_pos": pos,
        "ee_ori": ori,
        "ee_states": np.concatenate([pos, ori]),
        # LIBERO stores the two finger joints, the second one negative.
        "gripper_states": np.array([opening / 2, -opening / 2]),
        "joint_states": np.asarray(info["joint_pos"], dtype=np.float64)[:7],
    }


def run_episode(env: Any, seed: int, init_id: int, config: ExpertConfig | None = None,
                record_images: bool = True) -> Episode:
    """Reset `env` to (seed, init_id) and run the expert until success, failure or max_steps."""
    obs, info = env.reset(seed=seed, init_id=init_id)
    expert = make_expert(env, config)
    rows: dict[str, list[np.ndarray]] = {}
    actions, rewards, path = [], [], [np.asarray(info["ee_pos"], dtype=np.float64)]
    success, failure, extra = False, "", 0
    for _ in range(env.max_steps):
        for key, value in _proprio(info).items():
            rows.setdefault(key, []).append(value)
        if record_images:
            for camera, image in obs.get("rgb", {}).items():
                rows.setdefault(f"{camera}_rgb", []).append(image)
        try:
            action = expert.act(env.privileged_state())
        except ExpertError as err:
            failure = f"expert: {err}"
            for value in rows.values():
                value.pop()
            break
        obs, reward, terminated, truncated, info = env.step(action, render=record_images)
        actions.append(action)
        rewards.append(float(reward))
        path.append(np.asarray(info["ee_pos"], dtype=np.float64))
        success = bool(info.get("success", False))
        if success or terminated or truncated:
            break
        if expert.done:
            extra += 1
            if extra > SETTLE_STEPS:
                failure = f"plan finished without success (phase {expert.phase})"
                break
    else:
        failure = f"max_steps ({env.max_steps}) reached in stage {expert.stage_index}, " \
                  f"phase {expert.phase}"
    if not success and not failure:
        failure = "episode ended without success"
    obs_arrays = {k: np.stack(v) for k, v in rows.items()} if actions else {}
    return Episode(
        success=success,
        actions=np.asarray(actions, dtype=np.float64).reshape(-1, 7),
        obs=obs_arrays,
        rewards=np.asarray(rewards, dtype=np.float32),
        ee_path=np.stack(path),
        failure="" if success else failure,
    )
