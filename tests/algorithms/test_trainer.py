"""The trainer loop: a run killed mid-way and resumed equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_run import build

HERE = Path(__file__).parent
ITERATIONS = 5
COMPARED = (
    "iteration",
    "success_rate",
    "reward_mean",
    "loss",
    "clip_frac",
    "weight_drift",
    "rollout/env_steps",
)


def _log(out_dir):
    lines = (Path(out_dir) / "log.jsonl").read_text().splitlines()
    return [{k: json.loads(ln).get(k) for k in COMPARED} for ln in lines]


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    straight, straight_policy = build(tmp_path / "straight", ITERATIONS)
    straight.run()

    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        [sys.executable, str(HERE / "fake_run.py"), str(out), str(ITERATIONS)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            log = out / "log.jsonl"
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert job.poll() is None, "the job finished before it could be killed; slow it down"
        os.kill(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    done = len(_log(out))
    assert 2 <= done < ITERATIONS

    resumed, resumed_policy = build(out, ITERATIONS, resume=True)
    assert 1 <= resumed.iteration or resumed.checkpoint_path.exists()
    resumed.run()
    for (name, a), b in zip(
        straight_policy.state_dict().items(), resumed_policy.state_dict().values()
    ):
        assert torch.equal(a, b), name
    assert _log(out) == _log(tmp_path / "straight")


def test_resume_restores_the_random_reward_noise(tmp_path):
    straight, policy_a = build(tmp_path / "a", 3, reward="random")
    straight.run()
    first, _ = build(tmp_path / "b", 2, reward="random")
    first.run()
    second, policy_b = build(tmp_path / "b", 3, reward="random", resume=True)
    second.run()
    assert _log(tmp_path / "a") == _log(tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(policy_a.parameters(), policy_b.parameters()))


def test_jerk_scale_from_the_starting_policy_is_measured_once_and_resumed(tmp_path):
    straight, policy_a = build(tmp_path / "a", 3, jerk_scale_from_policy=True)
    straight.run()
    first_log = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[0])
    # the first iteration's rollouts set the scale: their mean jerk becomes 1
    assert straight.measured_jerk_scale == pytest.approx(first_log["mean_jerk"], rel=1e-6)
    assert straight.measured_jerk_scale != pytest.approx(800.0)  # not the configured one
    first, _ = build(tmp_path / "b", 2, jerk_scale_from_policy=True)
    first.run()
    second, policy_b = build(tmp_path / "b", 3, jerk_scale_from_policy=True, resume=True)
    second.run()
    assert second.measured_jerk_scale == straight.measured_jerk_scale  # from the checkpoint
    assert _log(tmp_path / "a") == _log(tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(policy_a.parameters(), policy_b.parameters()))


def test_resampling_refills_groups_without_signal(tmp_path):
    trainer, _ = build(tmp_path / "run", 1, max_resample_rounds=3)
    groups = []
    real_collect = trainer.collector.collect

    def spy(requests, seed):
        groups.append(len(requests))
        return real_collect(requests, seed)

    trainer.collector.collect = spy
    (stats,) = trainer.run()
    # the untrained policy mostly fails: all-fail groups are replaced by fresh ones
    assert groups[0] == 4 and len(groups) > 1 and stats["rollout/resampled_groups"] == sum(groups[1:])
    assert stats["groups"] == sum(groups) and stats["rollout/episodes"] == 8 * sum(groups)
    informative = stats["groups"] - stats["groups_dropped"]
    assert informative >= 4 or len(groups) == 4  # enough signal, or all 3 extra rounds used


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    trainer, _ = build(tmp_path / "run", 1)
    trainer.run()
    assert (tmp_path / "run" / "checkpoint" / "state.pt").exists()
    assert (tmp_path / "run" / "policy" / "model.safetensors").exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["algorithm"] == "grpo" and config["reward"]["name"] == "smooth"
    again, _ = build(tmp_path / "run", 2)
    with pytest.raises(ValueError, match="--resume"):
        again.run()


def test_trainer_needs_tasks(tmp_path):
    from smoothvla.algorithms.trainer import TrainConfig, Trainer

    with pytest.raises(ValueError, match="tasks is empty"):
        Trainer(TrainConfig(), None, None)
