"""`smoothvla train --backend ray`: the CLI wiring of RayPool, end to end on the tabletop suite."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smoothvla.cli import main
from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
from smoothvla.policies.head_configs import FlowHeadConfig

pytest.importorskip("ray", reason="ray is not installed (pip install 'smoothvla[ray]')")
TASK = "tabletop-goal/put-bowl-on-plate-v1"
TINY = dict(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32, n_layers=1,
            n_heads=2, ff_dim=64, flow=FlowHeadConfig(layers=1, steps=4), chunk_size=4)


def _tiny_checkpoint(path):
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (200, 7)), rng.normal(size=(200, 8)))
    CompactVLA(VLAConfig(**TINY, head="flow"), norm).save(path)
    return path


def test_train_cli_runs_on_ray_actors_like_local_processes(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "sft")
    out = tmp_path / "rl"
    args = [
        "train", "--policy", str(ckpt), "--tasks", TASK, "--iterations", "1",
        "--groups-per-iteration", "1", "--group-size", "2", "--max-steps", "8",
        "--backend", "ray", "--workers", "1", "--envs-per-worker", "2",
        "--out-dir", str(out), "--grpo.lr", "1e-3", "--reward.name", "binary",
        "--grpo.no-dynamic-sampling",
    ]
    assert main(args) == 0
    (line,) = (out / "log.jsonl").read_text().splitlines()
    stats = json.loads(line)
    assert stats["rollout/episodes"] == 2 and stats["rollout/env_steps"] == 16
    assert json.loads((out / "config.json").read_text())["backend"] == "ray"

    # the same seeded run on local worker processes gives the same result
    local = tmp_path / "rl-local"
    local_args = list(args)
    local_args[local_args.index("ray")] = "process"
    local_args[local_args.index(str(out))] = str(local)
    assert main(local_args) == 0
    local_stats = json.loads((local / "log.jsonl").read_text())
    for key in ("reward_mean", "success_rate", "mean_jerk", "loss", "approx_kl", "weight_drift",
                "rollout/env_steps"):
        assert local_stats[key] == stats[key], key
    ray_weights = load_file(str(out / "policy" / "model.safetensors"))
    local_weights = load_file(str(local / "policy" / "model.safetensors"))
    assert all(torch.equal(ray_weights[k], local_weights[k]) for k in ray_weights)


def test_train_cli_rejects_a_ray_address_without_the_ray_backend(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--policy", "x", "--tasks", TASK, "--ray-address", "auto"])
    assert "--ray-address needs --backend ray" in capsys.readouterr().err
