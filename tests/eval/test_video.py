"""Rollout videos: the writers round-trip, a tiny evaluation writes playable videos of
exactly the episodes asked for, and nothing leaves the workers when videos are off."""

import json

import numpy as np
import pytest
import torch

from smoothvla.cli import main
from smoothvla.errors import UserError
from smoothvla.eval import ResultsFile, read_results
from smoothvla.eval.runner import EvalPlan, PolicyRef, check_plan, evaluate
from smoothvla.report import video
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy, save_tiny_vla
from smoothvla.rollout.pool import Failure, InProcessPool, ResetRequest

TASK = "fake-reach/point-mass-v1"


def _moving_square(n, h=24, w=30):
    frames = np.full((n, h, w, 3), 40, np.uint8)
    for i in range(n):
        frames[i, 4:12, i % (w - 8): i % (w - 8) + 8] = (230, 60, 60)
    return frames


def test_annotate_scales_up_to_even_sizes_and_marks_success():
    frames = _moving_square(3, h=25, w=30)
    out = video.annotate(frames, [False, True, False], "pick it up", min_width=64)
    # scale ceil(64/30) = 3: 75 x 90 picture, a 34 px band, 109 rows padded to 110
    assert out.shape == (3, 110, 90, 3)
    assert np.array_equal(out[0, :75:3, ::3], frames[0])
    band = out[:, 75:, 45:].astype(int).sum(axis=(1, 2, 3))
    assert band[1] > band[0] and band[2] == band[1]  # "success" stays once reached
    with pytest.raises(ValueError, match="success must have shape"):
        video.annotate(frames, [True], "x")
    with pytest.raises(ValueError, match="uint8"):
        video.annotate(frames.astype(float), [True] * 3, "x")


def test_mp4_and_webp_round_trip(tmp_path):
    frames = _moving_square(17, h=24, w=31)  # odd width: padded by one column
    mp4 = video.write_mp4(tmp_path / "a.mp4", frames, 20.000000000000004)
    info = video.video_info(mp4)
    assert (info.frames, info.height, info.width, info.fps) == (17, 24, 32, 20.0)
    back = video.read_video(mp4)
    assert back.shape == (17, 24, 32, 3)
    assert np.abs(back[:, :, :31].astype(int) - frames).mean() < 12  # lossy, but the same picture
    webp = video.write_webp(tmp_path / "a.webp", frames, 20)
    assert video.read_video(webp).shape == (9, 24, 31, 3)  # frames 0, 2, ..., 16 at 10 fps
    assert video.read_video(video.write_webp(tmp_path / "b.webp", frames, 10)).shape[0] == 17
    assert not list(tmp_path.glob(".*tmp*"))
    webp = video.webp_from_mp4(mp4, tmp_path / "c.webp")
    assert video.read_video(webp).shape == (9, 24, 32, 3)


def test_video_stem_names_the_episode(tmp_path):
    stem = video.video_stem(tmp_path, "sft+ensemble:1[x=1]", 2, "tabletop-object/pick-v1",
                            "light", 0.5, 3, 7)
    assert stem == tmp_path / "sft+ensemble_1_x=1_@2/tabletop-object/pick-v1/light@0.5/init3_seed7"
    assert video.results_video_dir(tmp_path / "r.jsonl") == tmp_path / "r_videos"


def factory(task_id, perturbation=None, **options):
    return make_point_mass(task_id, **options)


def test_evaluation_records_the_first_episodes_of_each_cell(tmp_path):
    torch.manual_seed(0)
    policy = GaussianChunkPolicy(chunk_size=4)
    policy.save(tmp_path / "ckpt")
    plan = EvalPlan(task_ids=[TASK], init_ids=range(3), seeds=(0, 1),
                    perturbations=("none", "slow@0.5"), record_paths=0, videos=3)
    results = ResultsFile(tmp_path / "r.jsonl")
    rows = evaluate(policy, PolicyRef("fake", str(tmp_path / "ckpt")), plan, results, workers=0,
                    env_factory=factory, progress=False)
    found = video.find_videos(tmp_path / "r_videos")
    # the first 3 (init, seed) pairs in plan order, in both perturbations
    assert sorted((v.perturbation, v.init_id, v.seed) for v, _ in found) == [
        (p, i, s) for p in ("none", "slow") for i, s in ((0, 0), (0, 1), (1, 0))]
    by_key = {(r.perturbation, r.init_id, r.seed): r for r in rows}
    for v, folder in found:
        row = by_key[(v.perturbation, v.init_id, v.seed)]
        info = video.video_info(folder / v.mp4)
        assert info.frames == row.steps + 1 == v.steps + 1  # the reset state, then each step
        assert info.width >= video.MIN_WIDTH and info.width % 2 == 0 and info.height % 2 == 0
        assert info.fps == pytest.approx(1 / 0.05) and v.success == row.success
        assert row.jerk_trace is not None and row.chunk_start_steps is not None  # for the report
    unfilmed = [r for r in rows if (r.init_id, r.seed) in ((1, 1), (2, 0), (2, 1))]
    assert len(unfilmed) == 6 and all(r.jerk_trace is None for r in unfilmed)
    assert {r.settings.get("videos") for r in rows} == {None}  # not a setting: same key
    # the same plan without videos resumes into the same rows: nothing to run
    plan.videos = 0
    assert evaluate(policy, PolicyRef("fake", str(tmp_path / "ckpt")), plan, results,
                    workers=0, env_factory=factory, progress=False) == []


def test_no_frames_leave_the_envs_unless_asked():
    policy = GaussianChunkPolicy(chunk_size=4)
    with InProcessPool(2, env_factory=factory) as pool:
        out = Collector(policy, pool).collect(
            [GroupRequest(TASK, 0, 0, 1), GroupRequest(TASK, 0, 0, 1, video_camera="agentview")],
            seed=0)
        plain, filmed = out.trajectories
        assert "frames" not in plain.extras
        assert filmed.extras["frames"].shape[0] == filmed.num_steps + 1
        assert filmed.extras["frame_success"].shape == (filmed.num_steps + 1,)
        reply = pool.reset({0: ResetRequest(TASK, 0, 0, video_camera="wrist")})[0]
        assert isinstance(reply, Failure)
        assert "cannot record video from camera 'wrist'" in reply.message


def test_bad_video_options_are_refused():
    with pytest.raises(UserError, match="--video"):
        check_plan(EvalPlan([TASK], [0], videos=-1), registry=False)
    with pytest.raises(UserError, match="--video-camera 'agentview'"):
        check_plan(EvalPlan([TASK], [0], videos=1, env_options={"cameras": ("eye_in_hand",)}),
                   registry=False)


def test_eval_cli_writes_a_playable_video_on_the_tabletop(tmp_path, capsys):
    save_tiny_vla(tmp_path / "sft", chunk_size=8)
    out = tmp_path / "r.jsonl"
    task = "tabletop-object/pick-ketchup-place-basket-v1"
    assert main(["eval", "--checkpoints", f"sft={tmp_path / 'sft'}", "--tasks", task,
                 "--num-init-states", "1", "--workers", "1", "--envs-per-worker", "1",
                 "--video", "1", "--video-webp", "--out", str(out)]) == 0
    assert f"videos: {tmp_path / 'r_videos'}" in capsys.readouterr().out
    (row,) = read_results([out])
    stem = video.video_stem(tmp_path / "r_videos", "sft", 0, task, "none", 0.0, 0, 0)
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["instruction"] == "pick up the ketchup and place it in the basket"
    frames = video.read_video(stem.with_suffix(".mp4"))
    # 128 px agentview images scaled 2x, and the text band
    assert frames.shape == (row.steps + 1, 256 + 34, 256, 3)
    assert frames[:, :256].std() > 10  # a rendered scene, not a blank picture
    # the WebP beside it: the same picture, every k-th frame (k = webp_stride(fps))
    webp = video.read_video(stem.with_suffix(".webp"))
    k = video.webp_stride(meta["fps"])
    assert webp.shape == (len(range(0, row.steps + 1, k)), 256 + 34, 256, 3)
    assert np.abs(webp[:, :256].astype(float) - frames[::k, :256]).mean() < 12


def test_train_with_video_every_films_the_first_group(tmp_path):
    save_tiny_vla(tmp_path / "sft", chunk_size=4)
    out = tmp_path / "rl"
    assert main(["train", "--policy", str(tmp_path / "sft"), "--tasks",
                 "tabletop-goal/put-bowl-on-plate-v1", "--iterations", "3",
                 "--groups-per-iteration", "2", "--group-size", "2", "--max-steps", "8",
                 "--workers", "0", "--envs-per-worker", "2", "--out-dir", str(out),
                 "--reward.name", "binary", "--video-every", "2"]) == 0
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["iter_0000", "iter_0002"]
    for folder in (out / "videos").iterdir():
        found = video.find_videos(folder)
        assert len(found) == 2  # the first group's G = 2 rollouts, not the second group's
        assert len({(v.task_id, v.init_id, v.seed) for v, _ in found}) == 1
        for v, where in found:
            assert video.video_info(where / v.mp4).frames == v.steps + 1 == 9
            assert v.policy == "grpo"


def test_eval_max_steps_caps_episodes_and_keeps_capped_rows_apart(tmp_path):
    save_tiny_vla(tmp_path / "sft", chunk_size=4)
    out = tmp_path / "r.jsonl"
    args = ["eval", "--checkpoints", f"sft={tmp_path / 'sft'}", "--tasks",
            "tabletop-object/pick-ketchup-place-basket-v1", "--num-init-states", "1",
            "--workers", "0", "--envs-per-worker", "1", "--out", str(out)]
    assert main(args + ["--max-steps", "6"]) == 0
    # another cap under the same label is refused (the rows would mix), kept apart with --relabel
    assert main(args + ["--max-steps", "10"]) == 1
    assert main(args + ["--max-steps", "10", "--relabel"]) == 0
    rows = sorted(read_results([out]), key=lambda r: r.steps)
    assert [(r.policy, r.steps, r.settings.get("max_steps")) for r in rows] == [
        ("sft", 6, 6), ("sft[max_steps=10]", 10, 10)]
    with pytest.raises(SystemExit) as flag_error:  # a flag error, before any work
        main(args + ["--max-steps", "-1"])
    assert flag_error.value.code == 2
