"""Parameters that should train change after optimizer steps; frozen ones do not."""

import pytest
import torch

from policy_helpers import make_obs, tiny_policy

from smoothvla.policies import DemoBatch


def _step_and_diff(policy, steps=3):
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    obs = make_obs(4)
    actions = torch.rand(4, policy.chunk_size, 7) * 1.6 - 0.8
    torch.manual_seed(0)
    for _ in range(steps):
        loss = policy.sft_loss(DemoBatch(actions, obs=obs)).loss
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


@pytest.mark.parametrize("targets,context", [(("fusion",), False), (("fusion", "expert", "vision"), False),
                                            (("fusion", "expert"), True)])
def test_lora(targets, context):
    policy = tiny_policy(head="flow", lora_rank=2, lora_targets=targets, flow={"context": context})
    changed = _step_and_diff(policy)
    lora = [n for n, _ in policy.named_parameters() if "lora_" in n]
    assert lora and all(changed[n] for n in lora)
    assert any(n.startswith("fusion.") for n in lora)
    assert any(n.startswith("vision.") for n in lora) == ("vision" in targets)
    assert any(".cross_" in n for n in lora) == context
    for name, p in policy.named_parameters():
        trains = "lora_" in name or (name.startswith("head.") and "base_layer" not in name)
        assert p.requires_grad == trains, name
        assert changed[name] == trains, name
    counts = policy.parameter_counts()
    assert 0 < counts["trainable"] < sum(p.numel() for p in policy.parameters())


def test_auxiliary_token_head_co_trains_and_never_acts():
    policy = tiny_policy(head="flow", aux_token={"weight": 0.5})
    changed = _step_and_diff(policy)
    aux = [n for n, _ in policy.named_parameters() if n.startswith("aux_head.")]
    assert aux and all(changed[n] for n in aux)
    obs, actions = make_obs(4), torch.rand(4, policy.chunk_size, 7) * 1.6 - 0.8
    torch.manual_seed(0)
    out = policy.sft_loss(DemoBatch(actions, obs=obs))
    total, metrics = out.loss, out.metrics
    torch.manual_seed(0)  # the flow head's own loss, drawn with the same noise
    h = policy.backbone(policy.encode(obs))
    target = policy.normalizer.normalize_actions(actions)
    flow, _, _ = policy.head.loss(h, target, torch.ones(4, policy.chunk_size))
    ce, _, _ = policy.aux_head.loss(h, target, torch.ones(4, policy.chunk_size))
    torch.testing.assert_close(total, flow + 0.5 * ce)
    assert metrics["aux_token_ce"] == pytest.approx(float(ce.detach()))
    # Acting reads the flow head only: zeroing the auxiliary head changes no action.
    before = policy.act(obs, sample=False).actions
    with torch.no_grad():
        for p in policy.aux_head.parameters():
            p.zero_()
    torch.testing.assert_close(policy.act(obs, sample=False).actions, before)
    assert policy.parameter_counts()["aux_head"] == sum(p.numel() for p in policy.aux_head.parameters())


def _backbone_grads(policy, loss):
    policy.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in policy.named_parameters()
            if n.startswith(("fusion.", "queries")) and p.grad is not None}


@pytest.mark.parametrize("insulate", [False, True])
def test_insulated_backbone_learns_from_the_token_loss_only(insulate):
    policy = tiny_policy(head="flow", flow={"context": True},
                         aux_token={"weight": 1.0, "insulate_backbone": insulate})
    obs, actions = make_obs(4), torch.rand(4, policy.chunk_size, 7) * 1.6 - 0.8
    torch.manual_seed(0)
    total = _backbone_grads(policy, policy.sft_loss(DemoBatch(actions, obs=obs)).loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.head.parameters())
    seq = policy.hidden_states(policy.encode(obs))
    target = policy.normalizer.normalize_actions(actions)
    ce, _, _ = policy.aux_head.loss(seq[:, -policy.chunk_size:], target, torch.ones(4, policy.chunk_size))
    token_only = _backbone_grads(policy, ce)
    assert total.keys() == token_only.keys() and total
    same = all(torch.allclose(total[n], token_only[n], atol=1e-7) for n in total)
    assert same == insulate  # without insulation the flow loss reaches the backbone too


def test_auxiliary_token_head_trains_with_lora():
    policy = tiny_policy(head="flow", aux_token={"weight": 1.0}, lora_rank=2)
    changed = _step_and_diff(policy)
    assert all(changed[n] for n, _ in policy.named_parameters() if n.startswith("aux_head."))
    assert not any(changed[n] for n, _ in policy.named_parameters() if n.startswith("queries"))
