"""Parameters that should train change after optimizer steps; frozen ones do not."""

import pytest
import torch

from policy_helpers import make_obs, tiny_policy


def _step_and_diff(policy, steps=3):
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    obs = make_obs(4)
    actions = torch.rand(4, policy.chunk_size, 7) * 1.6 - 0.8
    torch.manual_seed(0)
    for _ in range(steps):
        loss, _ = policy.forward_sft({"obs": obs, "actions": actions})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {n: not torch.equal(before[n], p.detach()) for n, p in policy.named_parameters()}


@pytest.mark.parametrize("head", ["token", "flow", "gaussian"])
def test_full_finetuning(head):
    policy = tiny_policy(head=head)
    changed = _step_and_diff(policy)
    for name, p in policy.named_parameters():
        should = not name.startswith("vision.")  # encoder frozen by default
        assert p.requires_grad == should, name
        assert changed[name] == should, name
    assert policy.text.name == "hash"  # the text encoder is not even a submodule


def test_vision_tail_tuned_when_asked():
    policy = tiny_policy(head="gaussian", vision_trainable_blocks=1)
    changed = _step_and_diff(policy)
    assert all(changed[n] for n, _ in policy.named_parameters() if n.startswith("vision.tail_net."))
    assert not any(changed[n] for n, _ in policy.named_parameters() if n.startswith("vision.trunk_net."))


@pytest.mark.parametrize("targets", [("fusion",), ("fusion", "expert", "vision")])
def test_lora(targets):
    policy = tiny_policy(head="flow", lora_rank=2, lora_targets=targets)
    changed = _step_and_diff(policy)
    lora = [n for n, _ in policy.named_parameters() if "lora_" in n]
    assert lora and all(changed[n] for n in lora)
    assert any(n.startswith("fusion.") for n in lora)
    assert any(n.startswith("vision.") for n in lora) == ("vision" in targets)
    for name, p in policy.named_parameters():
        trains = "lora_" in name or (name.startswith("head.") and "base_layer" not in name)
        assert p.requires_grad == trains, name
        assert changed[name] == trains, name
    counts = policy.parameter_counts()
    assert 0 < counts["trainable"] < sum(p.numel() for p in policy.parameters())
