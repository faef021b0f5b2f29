"""The evaluation-only 'rtc' execution scheme: LeRobot's real-time chunking for the LeRobot
SmolVLA adapter (tiny random SmolVLAs, tiny_smolvla.py): the guided chunk goes through
LeRobot's `RTCProcessor`, leans towards the previous chunk's leftover, runs in `smoothvla
eval`, and is refused for RL and for policies without it."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("lerobot.policies.smolvla.modeling_smolvla")

from lerobot.policies.rtc.modeling_rtc import RTCProcessor
from tiny_smolvla import observations, tiny_smolvla

TASK = "tabletop-goal/put-bowl-on-plate-v1"


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def rtc_calls(monkeypatch):
    """Spy on LeRobot's `RTCProcessor.denoise_step`: one record per denoising step, whether it
    had a leftover to guide towards, and its inference delay."""
    calls = []
    original = RTCProcessor.denoise_step

    def spy(self, x_t, prev_chunk_left_over, inference_delay, *args, **kwargs):
        calls.append((prev_chunk_left_over is not None, inference_delay))
        return original(self, x_t, prev_chunk_left_over, inference_delay, *args, **kwargs)

    monkeypatch.setattr(RTCProcessor, "denoise_step", spy)
    return calls


def test_rtc_guides_the_chunk_towards_the_leftover_through_lerobot(tmp_path, rtc_calls):
    policy = tiny_smolvla(tmp_path)  # k = 4, N = 3
    obs = observations(2)
    none = np.full((2, 2, 7), np.nan, np.float32)
    leftover = none.copy()
    leftover[0] = np.linspace(-0.8, 0.8, 14).reshape(2, 7)  # episode 1 has no plan yet
    rtc = {"inference_delay": 1, "max_guidance_weight": 10.0}
    free = policy.act(obs, sample=False, leftover=none, rtc=rtc).actions
    assert rtc_calls == [(False, 1)] * 3  # LeRobot's sampler, unguided without a leftover
    rtc_calls.clear()
    guided = policy.act(obs, sample=False, leftover=leftover, rtc=rtc)
    # row 0 guided at each of the N = 3 steps, row 1 alone without guidance
    assert rtc_calls == [(True, 1)] * 3 + [(False, 1)] * 3
    assert guided.actions.shape == (2, 4, 7) and guided.extras == {}
    assert torch.equal(guided.log_prob, torch.zeros(2))  # no density: evaluation only
    target = torch.as_tensor(leftover[0])
    before = (free[0, :2] - target).norm()
    after = (guided.actions[0, :2] - target).norm()
    assert after < 0.5 * before, (after, before)  # pulled towards the leftover
    torch.testing.assert_close(guided.actions[1], free[1])  # no leftover: untouched
    assert policy.inner.config.rtc_config is None  # the checkpoint's config is unchanged
    weak = policy.act(obs, sample=False, leftover=leftover,
                      rtc={"inference_delay": 1, "max_guidance_weight": 0.1}).actions
    assert (guided.actions[0, :2] - target).norm() < (weak[0, :2] - target).norm()
    with pytest.raises(ValueError, match="not both"):
        policy.act(obs, sample=False, leftover=leftover, prefix=leftover)


def test_rtc_runs_in_smoothvla_eval_on_the_tabletop_suite(tmp_path, rtc_calls):
    from smoothvla.cli import main

    tiny_smolvla(tmp_path).save(tmp_path / "ckpt")
    results = tmp_path / "eval.jsonl"
    assert main(["eval", "--checkpoints", str(tmp_path / "ckpt"), "--tasks", TASK,
                 "--suite", "tabletop-goal", "--num-init-states", "1", "--max-steps", "4",
                 "--workers", "0", "--out", str(results), "--execution.scheme", "rtc",
                 "--execution.steps", "2", "--execution.rtc-delay", "1"]) == 0
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["settings"]["execution.scheme"] == "rtc"
    assert row["settings"]["execution.rtc_delay"] == 1
    # chunks at steps 0 (no leftover) and 2 (the first chunk's last 2 actions guide)
    assert rtc_calls == [(False, 1)] * 3 + [(True, 1)] * 3
    rtc_calls.clear()  # sampled evaluation: through eval's per-episode seeded wrapper
    assert main(["eval", "--checkpoints", str(tmp_path / "ckpt"), "--tasks", TASK,
                 "--suite", "tabletop-goal", "--num-init-states", "1", "--max-steps", "4",
                 "--workers", "0", "--out", str(tmp_path / "sampled.jsonl"), "--sample",
                 "--execution.scheme", "rtc", "--execution.steps", "2"]) == 0
    assert rtc_calls == [(False, 0)] * 3 + [(True, 0)] * 3


def test_rtc_is_refused_for_rl_and_for_the_compact_vla(tmp_path, capsys):
    from smoothvla.cli import main
    from smoothvla.rollout.fake_policy import save_tiny_vla

    tiny_smolvla(tmp_path).save(tmp_path / "ckpt")
    with pytest.raises(SystemExit) as exit_:  # refused while the flags are parsed
        main(["train", "--policy", str(tmp_path / "ckpt"), "--tasks", TASK,
              "--iterations", "1", "--out-dir", str(tmp_path / "rl"), "--execution.scheme", "rtc"])
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.replace("\u2502", " ").split())
    assert "evaluation only" in err and "'prefix'" in err
    assert not (tmp_path / "rl" / "log.jsonl").exists()

    vla = save_tiny_vla(tmp_path / "vla", chunk_size=4)
    assert main(["eval", "--checkpoints", str(vla), "--tasks", TASK, "--suite", "tabletop-goal",
                 "--num-init-states", "1", "--max-steps", "4", "--workers", "0",
                 "--out", str(tmp_path / "vla.jsonl"), "--execution.scheme", "rtc"]) == 1
    err = capsys.readouterr().err
    assert "only the LeRobot SmolVLA adapter" in err and "'prefix'" in err
    assert not (tmp_path / "vla.jsonl").exists() or not (tmp_path / "vla.jsonl").read_text()
