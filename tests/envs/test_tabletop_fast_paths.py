"""The env's fast paths give bit-identical results to the plain code they replace."""

from __future__ import annotations

import copy

import mujoco
import numpy as np

from smoothvla.envs import make
from smoothvla.envs.tabletop import env as env_mod
from smoothvla.envs.tabletop import robot

OBJECT_TASK = "tabletop-object/pick-ketchup-place-basket-v1"


def test_merged_physics_calls_match_per_piece_step1_step2():
    """step2 + mj_step(per - 1) + step1 per ramp piece == the merged 7-call sequence."""
    env = make(OBJECT_TASK, cameras=())
    env.reset(seed=0, init_id=0)
    for a in np.random.default_rng(0).uniform(-1, 1, (5, 7)):
        env.step(a)  # some motion and contacts
    m = env.model
    per, n_ramp = env_mod.N_SUBSTEPS // env_mod.N_RAMP, env_mod.N_RAMP
    ramp = env.data.ctrl[:7] + np.random.default_rng(1).uniform(-0.05, 0.05, (n_ramp, 7))
    plain, merged = copy.copy(env.data), copy.copy(env.data)
    for ctrl in ramp:
        plain.ctrl[:7] = ctrl
        mujoco.mj_step2(m, plain)
        mujoco.mj_step(m, plain, nstep=per - 1)
        mujoco.mj_step1(m, plain)
    merged.ctrl[:7] = ramp[0]
    mujoco.mj_step2(m, merged)
    mujoco.mj_step(m, merged, nstep=per - 1)
    for ctrl in ramp[1:]:
        merged.ctrl[:7] = ctrl
        mujoco.mj_step(m, merged, nstep=per)
    mujoco.mj_step1(m, merged)
    for field in ("qpos", "qvel", "qacc_warmstart", "xpos", "xmat", "site_xpos", "site_xmat"):
        assert np.array_equal(getattr(plain, field), getattr(merged, field)), field
    assert plain.time == merged.time and plain.ncon == merged.ncon
    assert np.array_equal(plain.contact.geom, merged.contact.geom)
    env.close()


def test_solve_and_axis_angle_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        jac = rng.normal(size=(6, 7))
        a = jac @ jac.T + 0.05**2 * np.eye(6)
        assert np.array_equal(robot._solve(a, jac), np.linalg.solve(a, jac))
        rotvec = rng.uniform(-0.5, 0.5, 3)
        angle = float(np.linalg.norm(rotvec))
        quat = np.empty(4)
        mujoco.mju_axisAngle2Quat(quat, rotvec / angle, angle)
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, quat)
        assert np.array_equal(robot.axis_angle_to_mat(rotvec), mat.reshape(3, 3))
    assert np.array_equal(robot.axis_angle_to_mat(np.zeros(3)), np.eye(3))


def test_action_validation_unchanged():
    env = make(OBJECT_TASK, cameras=())
    env.reset(seed=0, init_id=0)
    for bad in (np.zeros(6), np.full(7, np.nan), [0.0] * 8):
        try:
            env.step(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted {bad!r}")
    env.step([0, 0, 0, 0, 0, 0, 1])  # a list of ints is fine
    env.close()
