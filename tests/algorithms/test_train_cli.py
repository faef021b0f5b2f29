"""`smoothvla train` end to end on the embedded tabletop suite with a tiny flow-head VLA."""

import json

import numpy as np
import pytest
import torch

from smoothvla.cli import main
from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
from smoothvla.policies.head_configs import FlowHeadConfig

TASK = "tabletop-goal/put-bowl-on-plate-v1"
TINY = dict(
    vision_encoder="tiny",
    text_encoder="hash",
    image_size=32,
    d_model=32,
    n_layers=1,
    n_heads=2,
    ff_dim=64,
    chunk_size=4,
)
TINY_FLOW = FlowHeadConfig(layers=1, steps=4)


def _tiny_checkpoint(path):
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (200, 7)), rng.normal(size=(200, 8)))
    CompactVLA(VLAConfig(**TINY, head="flow", flow=TINY_FLOW), norm).save(path)
    return path


def test_train_cli_runs_grpo_on_tabletop_and_resumes(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "sft")
    out = tmp_path / "rl"
    args = [
        "train",
        "--policy",
        str(ckpt),
        "--tasks",
        TASK,
        "--iterations",
        "1",
        "--groups-per-iteration",
        "1",
        "--group-size",
        "2",
        "--max-steps",
        "8",
        "--workers",
        "0",
        "--envs-per-worker",
        "2",
        "--out-dir",
        str(out),
        "--grpo.lr",
        "1e-3",
        "--reward.name",
        "binary",
        "--grpo.no-dynamic-sampling",
    ]
    assert main(args) == 0
    (line,) = (out / "log.jsonl").read_text().splitlines()
    stats = json.loads(line)
    assert stats["rollout/episodes"] == 2 and stats["rollout/env_steps"] == 16
    assert stats["trajectories_used"] == 2 and "weight_drift" in stats
    assert (out / "policy" / "model.safetensors").exists()
    # one more iteration on top of the checkpoint
    assert main(args[:5] + ["--iterations", "2", "--resume"] + args[7:]) == 0
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_flow_head_log_probs_are_reproduced_from_recorded_chunks():
    # the ratio of every RL algorithm starts at exactly 1 only if this holds
    from smoothvla.rollout.collector import Collector, GroupRequest
    from smoothvla.rollout.pool import InProcessPool

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (200, 7)), rng.normal(size=(200, 8)))
    policy = CompactVLA(VLAConfig(**TINY, head="flow", flow=TINY_FLOW), norm).eval()
    with InProcessPool(2, env_options={"image_size": 32}) as pool:
        trajs = (
            Collector(policy, pool, max_steps=8)
            .collect([GroupRequest(TASK, 0, 1, 2)], seed=0)
            .trajectories
        )
    for t in trajs:
        assert t.num_steps == 8 and t.num_chunks == 2 and t.joint_pos.shape[1] == 7
        with torch.no_grad():
            again = policy.log_prob(t.chunk_obs, t.chunks)
        np.testing.assert_allclose(again.numpy(), t.log_probs, rtol=1e-4, atol=1e-3)


def test_train_cli_errors(tmp_path, capsys):
    assert main(["train", "--tasks", TASK]) == 1
    assert "--policy is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--policy", "x", "--tasks", TASK, "--group-size", "1"])
    assert "group_size must be >= 2" in capsys.readouterr().err
    assert main(["train", "--policy", str(tmp_path / "none"), "--tasks", TASK]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("head", ["token", "gaussian"])
def test_train_refuses_flow_flags_on_another_head(tmp_path, capsys, head):
    flag = "--overrides.flow-sde-sigma"
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (200, 7)), rng.normal(size=(200, 8)))
    CompactVLA(VLAConfig(**TINY, head=head), norm).save(tmp_path / "sft")
    args = ["train", "--policy", str(tmp_path / "sft"), "--tasks", TASK, "--workers", "0",
            "--out-dir", str(tmp_path / "rl"), "--iterations", "1", "--group-size", "2",
            "--groups-per-iteration", "1", "--max-steps", "4", flag, "0.3"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert flag in err and f"{head} head" in err
    assert not (tmp_path / "rl").exists()  # refused before anything was written
    if head != "token":  # the temperature samples token heads only
        assert main(args[:-2] + ["--overrides.temperature", "0.2"]) == 1
        assert "--overrides.temperature" in capsys.readouterr().err
        assert not (tmp_path / "rl").exists()
