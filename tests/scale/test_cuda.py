"""The GPU path: the compact VLA, SFT steps and `smoothvla train` on CUDA, fp32 and bf16.

Skipped where torch sees no CUDA GPU (CI); run on a GPU host with `pytest tests/scale/test_cuda.py`.
The device-independent parts (device resolution, errors) run everywhere.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothvla.cli import main
from smoothvla.policies import DemoBatch, load_policy, place, resolve_device

sys.path.insert(0, str(Path(__file__).parents[1] / "policies"))
from policy_helpers import make_obs, tiny_policy

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
HEADS = ("token", "flow", "gaussian")
TASK = "tabletop-goal/put-bowl-on-plate-v1"


def test_device_resolution_and_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu-please")
    policy = tiny_policy(head="token")
    with pytest.raises(ValueError, match="unknown precision"):
        policy.set_precision("fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="needs the policy on a CUDA device"):
            policy.set_precision("bf16")
        # 'auto' on a CPU-only host quietly keeps fp32
        assert place(policy, "auto", "bf16").autocast_dtype is None


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("head", HEADS)
def test_sampled_log_probs_are_recomputed_on_cuda(head, precision):
    # the RL ratio starts at 1 only if the update reproduces the log-probs sampled in rollouts;
    # the update runs on other batch sizes than acting (different kernels), so compare across them
    policy = place(tiny_policy(head=head), "cuda", precision).eval()
    obs = make_obs(6, seed=1)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert chunk.actions.device.type == "cpu" and chunk.log_prob.device.type == "cpu"
    assert all(v.device.type == "cpu" for v in chunk.extras.values())
    with torch.no_grad():
        full = policy.log_prob(None, chunk).cpu()
        part = policy.log_prob(None, chunk.select(torch.tensor([4, 1, 2]))).cpu()
    tol = 1e-3 if precision == "fp32" else 2e-2
    np.testing.assert_allclose(full.numpy(), chunk.log_prob.numpy(), atol=tol, rtol=1e-4)
    np.testing.assert_allclose(part.numpy(), chunk.log_prob[[4, 1, 2]].numpy(), atol=tol, rtol=1e-4)


@cuda
@pytest.mark.parametrize("head", HEADS)
def test_cuda_acts_like_cpu(head):
    cpu = tiny_policy(head=head).eval()
    gpu = place(tiny_policy(head=head), "cuda").eval()
    obs = make_obs(8, seed=2)
    a_cpu = cpu.act(obs, sample=False).actions
    a_gpu = gpu.act(obs, sample=False).actions
    if head == "token":  # argmax over 16 bins: allow a rare tie broken the other way
        assert (a_cpu - a_gpu).abs().gt(1e-4).float().mean() < 0.02
    else:  # TF32 convolutions on recent GPUs: ~1e-3 relative
        np.testing.assert_allclose(a_gpu.numpy(), a_cpu.numpy(), rtol=2e-3, atol=2e-3)
    # the same CPU generator draws the same noise on either device
    g_cpu = cpu.act(obs, sample=True, generator=torch.Generator().manual_seed(3))
    g_gpu = gpu.act(obs, sample=True, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(g_gpu.log_prob.numpy(), g_cpu.log_prob.numpy(), rtol=1e-3, atol=1e-2)


DEVICES = [("cpu", "fp32"), pytest.param("cuda", "fp32", marks=cuda),
           pytest.param("cuda", "bf16", marks=cuda)]


@pytest.mark.parametrize(("device", "precision"), DEVICES)
def test_sft_steps_on_device_then_load_on_cpu(tmp_path, device, precision):
    policy = place(tiny_policy(head="token"), device, precision)
    obs = make_obs(8, seed=3)
    rng = np.random.default_rng(0)
    batch = DemoBatch(torch.as_tensor(rng.uniform(-0.5, 0.5, (8, 4, 7)).astype(np.float32)), obs=obs)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(60):
        loss = policy.sft_loss(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert all(p.device.type == device for p in policy.parameters())
    policy.eval().save(tmp_path / "ckpt")
    back = load_policy(tmp_path / "ckpt").eval()  # on the CPU
    mine = place(policy, device, "fp32").act(obs, sample=False).actions
    mismatch = (back.act(obs, sample=False).actions - mine).abs().gt(1e-4).float().mean()
    assert mismatch < 0.02  # argmax ties may break the other way between devices


@cuda
@pytest.mark.parametrize("algo", ["grpo", "ppo", "dpo"])
def test_train_cli_on_cuda_bf16(tmp_path, algo):
    ckpt = tmp_path / "sft"
    tiny_policy(head="flow").save(ckpt)
    out = tmp_path / "rl"
    args = ["train", "--policy", str(ckpt), "--tasks", TASK, "--algorithm", algo, "--iterations", "1",
            "--groups-per-iteration", "1", "--group-size", "4", "--max-steps", "8",
            "--workers", "0", "--envs-per-worker", "4", "--out-dir", str(out),
            "--reward.name", "random", "--device", "cuda", "--precision", "bf16"]
    assert main(args) == 0
    stats = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert stats["rollout/episodes"] == 4
    assert np.isfinite(stats["weight_drift"]) and stats["weight_drift"] > 0
    load_policy(out / "policy")  # loads on the CPU
