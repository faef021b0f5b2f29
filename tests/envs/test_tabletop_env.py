"""TabletopEnv behaviour: control, images, determinism, the expert contract, success."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IDLE

from smoothvla.envs import TaskEnv, list_tasks, make
from smoothvla.envs.tabletop.robot import HOME_QPOS, JOINT_LOWER, JOINT_UPPER, DiffIK
from smoothvla.envs.tabletop.scene import ROBOT_BASE

OBJECT_TASK = "tabletop-object/pick-ketchup-place-basket-v1"


@pytest.fixture(scope="module")
def state_env():
    env = make(OBJECT_TASK, cameras=())
    yield env
    env.close()


def test_protocol_and_contract_attributes(state_env):
    env = state_env
    assert isinstance(env, TaskEnv)
    assert env.control_dt == 0.05 and env.max_steps == 280
    assert env.action_scale == {"pos": 0.05, "rot": 0.5}
    assert env.action_space.shape == (7,)
    env.reset(seed=0, init_id=0)
    assert env.plan == [dict(skill="pick_place", object="ketchup", target="basket", mode="in")]
    st = env.privileged_state()
    assert st["ee_pos"].shape == (3,) and st["ee_quat"].shape == (4,)
    assert st["joint_pos"].shape == (7,) and 0.07 < st["gripper"] <= 0.0801
    ketchup = st["objects"]["ketchup"]
    assert ketchup["graspable"] and not st["objects"]["basket"]["graspable"]
    np.testing.assert_allclose(ketchup["half_size"], [0.022, 0.022, 0.04])
    assert ketchup["grasp_width"] == pytest.approx(0.044)
    # Resting on the table: centre at its half height.
    assert ketchup["pos"][2] == pytest.approx(0.04, abs=2e-3)
    # Neutral orientation: the gripper points down (tool z axis = world -z).
    w, x, y, z = st["ee_quat"]
    tool_z = np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])
    np.testing.assert_allclose(tool_z, [0, 0, -1], atol=1e-3)


def test_panda_kinematics_match_published_offsets():
    ik = DiffIK((0.0, 0.0, 0.0))
    # All joints zero: the arm stands straight up. Franka DH: x = a4 + a5... = 0.088,
    # z = d1 + d3 + d5 - d_flange - tcp = 0.333 + 0.316 + 0.384 - 0.107 - 0.1034.
    pos, _ = ik.forward(np.zeros(7))
    np.testing.assert_allclose(pos, [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034],
                               atol=1e-6)
    assert np.all(HOME_QPOS > JOINT_LOWER) and np.all(HOME_QPOS < JOINT_UPPER)
    assert ROBOT_BASE[2] == 0.0


def test_point_to_point_motion_is_tracked(state_env):
    """Per-step deltas up to 0.04 m (0.8 m/s) are followed within a few millimetres."""
    env = state_env
    _, info = env.reset(seed=0, init_id=0)
    direction = np.array([0.6, 0.4, -0.5]) / np.linalg.norm([0.6, 0.4, -0.5])
    speeds = [0.01, 0.02, 0.03, 0.04, 0.04, 0.04, 0.03, 0.02, 0.01, 0, 0, 0]
    commanded = info["ee_pos"].copy()
    errors = []
    for v in speeds:
        action = IDLE.copy()
        action[:3] = direction * v / env.action_scale["pos"]
        commanded = commanded + direction * v
        _, _, _, _, info = env.step(action)
        errors.append(np.linalg.norm(info["ee_pos"] - commanded))
    assert max(errors) < 0.006 and errors[-1] < 0.002


def test_rotation_action_turns_the_gripper_about_world_z(state_env):
    env = state_env
    _, info = env.reset(seed=0, init_id=0)
    action = IDLE.copy()
    action[5] = 0.2  # 0.1 rad per step about world z
    for _ in range(5):
        _, _, _, _, info = env.step(action)
    for _ in range(5):
        _, _, _, _, info = env.step(IDLE)
    w, x, y, z = info["ee_quat"]
    tool_x = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])
    assert np.degrees(np.arctan2(tool_x[1], tool_x[0])) == pytest.approx(28.6, abs=2.0)


def test_full_scale_single_steps_are_not_lost(state_env):
    """One a = 1 step commands 0.05 m or 0.5 rad; the arm gets there once it settles."""
    env = state_env
    _, info = env.reset(seed=0, init_id=0)
    start = info["ee_pos"].copy()
    env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))
    for _ in range(5):
        _, _, _, _, info = env.step(IDLE)
    np.testing.assert_allclose(info["ee_pos"] - start, [0.05, 0, 0], atol=1e-3)
    env.reset(seed=0, init_id=0)
    env.step(np.array([0, 0, 0, 0, 0, 1.0, -1]))
    for _ in range(5):
        _, _, _, _, info = env.step(IDLE)
    w, x, y, z = info["ee_quat"]
    tool_x = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z)])
    assert np.arctan2(tool_x[1], tool_x[0]) == pytest.approx(0.5, abs=0.01)


def test_scripted_grasp_lifts_the_object(state_env):
    env = state_env
    env.reset(seed=0, init_id=1)
    obj = env.privileged_state()["objects"]["ketchup"]["pos"].copy()

    def move_to(goal, grip, steps=60):
        info = None
        for _ in range(steps):
            ee = env.privileged_state()["ee_pos"]
            delta = np.clip((goal - ee) / 0.05, -0.5, 0.5)
            _, _, _, _, info = env.step(np.r_[delta, 0, 0, 0, grip])
        return info

    move_to(obj + [0, 0, 0.1], -1, 25)
    move_to(obj, -1, 25)
    info = move_to(obj, 1, 8)
    assert info["is_grasping"]
    assert 0.04 < info["gripper"] < 0.046  # fingers stop on the 0.044 m bottle
    info = move_to(obj + [0, 0, 0.15], 1, 25)
    assert info["is_grasping"]
    assert env.privileged_state()["objects"]["ketchup"]["pos"][2] > obj[2] + 0.12


def test_same_seed_same_trajectory():
    def rollout():
        env = make("tabletop-goal/stack-blue-cube-on-red-cube-v1", cameras=())
        env.reset(seed=3, init_id=7)
        rng = np.random.default_rng(1)
        out = [env.step(rng.uniform(-1, 1, 7))[4]["ee_pos"] for _ in range(10)]
        state = env.privileged_state()["objects"]["blue_cube"]["pos"]
        env.close()
        return np.array(out), state

    (a, sa), (b, sb) = rollout(), rollout()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)


def test_bad_actions_raise(state_env):
    env = state_env
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0, 0, np.inf, 0, 0, 0, 0]))
    # Out-of-range values are clipped, not rejected: same result as the clipped action.
    env.reset(seed=0)
    big = env.step(np.array([5.0, 0, 0, 0, 0, 0, -3]))[4]["ee_pos"]
    env.reset(seed=0)
    one = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))[4]["ee_pos"]
    np.testing.assert_array_equal(big, one)


def test_truncation_at_max_steps():
    env = make("tabletop-spatial/pick-bowl-left-of-plate-place-plate-v1", cameras=())
    env.reset(seed=0)
    flags = [env.step(IDLE)[2:4] for _ in range(env.max_steps)]
    assert all(f == (False, False) for f in flags[:-1]) and flags[-1] == (False, True)
    env.close()


def test_images_upright_nonblank_and_distinct_per_camera():
    env = make(OBJECT_TASK, image_size=64)
    obs, _ = env.reset(seed=0, init_id=0)
    agent, hand = obs["rgb"]["agentview"], obs["rgb"]["eye_in_hand"]
    assert agent.shape == hand.shape == (64, 64, 3) and agent.dtype == np.uint8
    assert agent.std() > 10 and hand.std() > 10
    assert np.abs(agent.astype(int) - hand.astype(int)).mean() > 10
    # Upright: the (brown) table fills the bottom of agentview, the grey wall the top.
    table_rgb = np.array([0.6, 0.48, 0.37]) * 255
    bottom, top = agent[-8:].reshape(-1, 3), agent[:8].reshape(-1, 3)
    dist = lambda px: np.linalg.norm(px - table_rgb, axis=1).mean()  # noqa: E731
    assert dist(bottom) < 60 < dist(top)
    env.close()
    one = make(OBJECT_TASK, cameras=("eye_in_hand",), image_size=32)
    assert set(one.reset(seed=0)[0]["rgb"]) == {"eye_in_hand"}
    one.close()
    none = make(OBJECT_TASK, cameras=())
    assert none.reset(seed=0)[0]["rgb"] == {}


@pytest.mark.parametrize("suite", ["tabletop-spatial", "tabletop-object", "tabletop-goal",
                                   "tabletop-long"])
def test_success_flips_when_objects_are_teleported_into_place(suite, teleport):
    for spec in list_tasks(suite):
        env = make(spec.task_id, cameras=())
        env.reset(seed=0, init_id=5)
        _, reward, terminated, _, info = env.step(IDLE)
        assert not info["success"] and reward == 0.0 and not terminated
        teleport(env)
        for _ in range(3):
            _, reward, terminated, _, info = env.step(IDLE)
            if terminated:
                break
        assert info["success"], spec.task_id
        assert reward == 1.0 and terminated
        env.close()


def test_long_task_needs_both_stages(teleport):
    env = make("tabletop-long/put-ketchup-and-mustard-in-basket-v1", cameras=())
    env.reset(seed=0, init_id=0)
    basket = env.privileged_state()["objects"]["basket"]["pos"]
    env.set_object_pose("ketchup", basket + [0, 0, 0.01], np.array([1.0, 0, 0, 0]))
    info = env.step(IDLE)[4]
    assert info["stage"] == 1 and not info["success"]
    teleport(env)
    assert env.step(IDLE)[4]["success"]
    env.close()


def test_drawer_success_thresholds():
    env = make("tabletop-goal/open-drawer-v1", cameras=())
    env.reset(seed=0, init_id=0)
    art = env.privileged_state()["articulations"]["drawer"]
    assert art["qpos"] == 0.0 and art["open_qpos"] > art["closed_qpos"]
    np.testing.assert_allclose(art["axis"], [-1, 0, 0], atol=1e-9)
    handle_before = art["handle_pos"].copy()
    env.set_articulation("drawer", 0.05)
    assert not env.step(IDLE)[4]["success"]
    env.set_articulation("drawer", 0.11)
    info = env.step(IDLE)[4]
    assert info["success"]
    handle_after = env.privileged_state()["articulations"]["drawer"]["handle_pos"]
    assert handle_after[0] == pytest.approx(handle_before[0] - 0.11, abs=5e-3)
    env.close()


def test_set_object_pose_rejects_fixed_objects(state_env):
    state_env.reset(seed=0)
    with pytest.raises(ValueError, match="not a free object"):
        state_env.set_object_pose("basket", np.zeros(3))


@pytest.mark.parametrize("noise", [False, True])
def test_skipped_renders_change_no_physics_and_no_later_image(noise):
    """`step(a, render=False)` leaves the images out and nothing else: the states, and the
    images of a later rendered step, equal those of an env that rendered every step. Under
    image noise (whose draws share the episode's generator) it renders anyway."""
    def rollout(render_every: int):
        env = make(OBJECT_TASK, image_size=32,
                   perturbation="image_noise@0.5" if noise else None)
        env.reset(seed=1, init_id=2)
        rng = np.random.default_rng(0)
        states, images = [], []
        for t in range(12):
            obs, _, _, _, info = env.step(rng.uniform(-1, 1, 7), render=t % render_every == 0)
            states.append(info["ee_pos"])
            images.append(obs["rgb"])
        env.close()
        return np.array(states), images

    states_every, every = rollout(1)
    states_skip, skipped = rollout(4)
    np.testing.assert_array_equal(states_skip, states_every)
    for t, rgb in enumerate(skipped):
        if t % 4 == 0 or noise:
            assert set(rgb) == {"agentview", "eye_in_hand"}
            for cam in rgb:
                np.testing.assert_array_equal(rgb[cam], every[t][cam])
        else:
            assert rgb == {}
