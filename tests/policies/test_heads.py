"""Action heads: sampling and log-probability agree; hand-checked densities and bins."""

import math

import numpy as np

import pytest
import torch

from policy_helpers import make_obs, tiny_policy
from smoothvla.policies import ActionChunk, Policy
from smoothvla.policies.heads import FlowHead, GaussianHead, TokenHead, gaussian_log_density

# The action heads as configured by name; "flow_context" is the flow expert that also
# cross-attends to every backbone state. The token head samples at temperature 0.7.
HEADS = {"token": {"head": "token", "token": {"temperature": 0.7}}, "flow": {"head": "flow"},
         "flow_context": {"head": "flow", "flow": {"context": True}},
         "gaussian": {"head": "gaussian"}}


@pytest.mark.parametrize("head", HEADS)
def test_sampled_log_prob_matches_recomputation(head):
    policy = tiny_policy(**HEADS[head])
    assert isinstance(policy, Policy)
    obs = make_obs(5)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(1))
    assert chunk.actions.shape == (5, 4, 7)
    assert chunk.actions.abs().max() <= 1.0
    assert torch.isfinite(chunk.log_prob).all() and chunk.log_prob.shape == (5,)
    # From the cached features in extras (the RL path) ...
    from_extras = policy.log_prob(None, chunk)
    torch.testing.assert_close(from_extras, chunk.log_prob, rtol=1e-5, atol=1e-4)
    # ... and from scratch: re-encode the observations, keep only the head's own extras.
    head_only = {k: v for k, v in chunk.extras.items()
                 if k not in ("vis_feat", "lang_emb", "proprio")}
    scratch = policy.log_prob(obs, ActionChunk(chunk.actions, chunk.log_prob, head_only))
    torch.testing.assert_close(scratch, chunk.log_prob, rtol=1e-5, atol=1e-4)
    assert scratch.requires_grad
    scratch.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.head.parameters())


@pytest.mark.parametrize("head", HEADS)
def test_log_prob_terms_sum_to_the_chunk_log_prob(head):
    policy = tiny_policy(**HEADS[head])
    chunk = policy.act(make_obs(3), sample=True, generator=torch.Generator().manual_seed(2))
    terms = policy.log_prob_terms(None, chunk)
    k, a = policy.chunk_size, 7
    per_chunk = (policy.head.steps + 1) * k * a if head.startswith("flow") else k * a
    assert terms.shape == (3, per_chunk)
    torch.testing.assert_close(terms.sum(-1), chunk.log_prob, rtol=1e-5, atol=1e-4)
    if head == "token":  # each term is a log-probability of one token: <= 0
        assert (terms <= 0).all()


@pytest.mark.parametrize("head", HEADS)
def test_greedy_is_deterministic_and_sampling_is_not(head):
    policy = tiny_policy(**HEADS[head])
    obs = make_obs(2)
    a, b = policy.act(obs, sample=False), policy.act(obs, sample=False)
    assert torch.equal(a.actions, b.actions)
    assert torch.equal(a.log_prob, torch.zeros(2))
    s1 = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    s2 = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(1))
    s3 = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(s1.actions, s2.actions)
    assert torch.equal(s1.actions, s3.actions)


@pytest.mark.parametrize("head", HEADS)
def test_chunk_select_and_cat_keep_log_probs(head):
    policy = tiny_policy(**HEADS[head])
    chunk = policy.act(make_obs(4), sample=True, generator=torch.Generator().manual_seed(3))
    rebuilt = ActionChunk.cat([chunk.select(i) for i in (2, 0)])
    torch.testing.assert_close(policy.log_prob(None, rebuilt), chunk.log_prob[[2, 0]],
                               rtol=1e-5, atol=1e-4)


def test_gaussian_log_density_by_hand():
    x = torch.tensor([[1.0, -1.0]])
    got = gaussian_log_density(x, torch.zeros(1, 2), torch.tensor(2.0), 1)
    expected = 2 * (-0.5 * 0.25 - math.log(2.0) - 0.5 * math.log(2 * math.pi))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_token_bins_by_hand():
    head = TokenHead(d=4, action_dim=1, n_bins=4)  # edges -1, -0.5, 0, 0.5, 1
    x = torch.tensor([-1.5, -1.0, -0.6, -0.4, 0.0, 0.49, 0.51, 1.0, 3.0])
    assert head.bins_of(x).tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 3]
    assert head.centers.tolist() == [-0.75, -0.25, 0.25, 0.75]
    # Uniform logits: every chunk of k=2 steps x 1 dim has probability (1/4)^2.
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
    h = torch.zeros(1, 2, 4)
    logp = head.log_prob(h, torch.zeros(1, 2, 1), {})
    assert logp.item() == pytest.approx(2 * math.log(0.25), abs=1e-6)


def test_gaussian_head_log_prob_by_hand():
    head = GaussianHead(d=3, action_dim=2, init_log_std=math.log(0.5))
    with torch.no_grad():
        head.mean.weight.zero_()
        head.mean.bias.copy_(torch.tensor([0.1, -0.2]))
    x = torch.tensor([[[0.6, -0.2]]])
    expected = (-0.5 * 1.0 - math.log(0.5) - 0.5 * math.log(2 * math.pi)) \
        + (-math.log(0.5) - 0.5 * math.log(2 * math.pi))
    assert head.log_prob(torch.zeros(1, 1, 3), x, {}).item() == pytest.approx(expected, abs=1e-5)


def test_flow_sde_step_is_the_documented_gaussian():
    head = FlowHead(d=8, action_dim=2, heads=2, ff=16, steps=4, sde_sigma=0.5, layers=1)
    h, x = torch.randn(1, 3, 8), torch.randn(1, 3, 2)
    mean, std = head._step(h, x, 2)
    tau, dt = 0.5, 0.25
    v = head.velocity(h, x, torch.tensor([tau]))
    torch.testing.assert_close(mean, x + dt * (v - 0.25 * (x - tau * v) / (2 * (1 - tau))))
    assert std == pytest.approx(0.5 * math.sqrt(dt))


def test_flow_loss_at_given_flow_times_is_the_documented_mse():
    head = FlowHead(d=8, action_dim=2, heads=2, ff=16, steps=4, layers=1)
    h, target, mask = torch.randn(3, 4, 8), torch.randn(3, 4, 2), torch.ones(3, 4)
    tau = torch.tensor([0.0, 0.5, 0.9])
    torch.manual_seed(0)
    loss, _, _ = head.loss(h, target, mask, tau)
    torch.manual_seed(0)
    noise = torch.randn(target.shape)  # the head draws its noise first
    t = tau[:, None, None]
    v = head.velocity(h, t * target + (1 - t) * noise, tau)
    torch.testing.assert_close(loss, ((v - (target - noise)) ** 2).mean())
    torch.manual_seed(0)
    uniform, _, _ = head.loss(h, target, mask)  # tau drawn uniformly: another loss
    assert not torch.allclose(uniform, loss)


def test_flow_expert_with_context_reads_every_backbone_state():
    torch.manual_seed(0)
    head = FlowHead(d=8, action_dim=2, heads=2, ff=16, steps=4, layers=2, context=True, chunk_size=3)
    seq, x, tau = torch.randn(2, 7, 8), torch.randn(2, 3, 2), torch.rand(2)
    v = head.velocity(seq, x, tau)
    assert v.shape == (2, 3, 2)
    moved = seq.clone()
    moved[:, 0] += 1.0  # a state before the action queries, e.g. a vision token
    assert not torch.allclose(head.velocity(moved, x, tau), v)
    plain = FlowHead(d=8, action_dim=2, heads=2, ff=16, steps=4, layers=2)
    plain.load_state_dict({k: w for k, w in head.state_dict().items() if ".cross_" not in k})
    torch.testing.assert_close(plain.velocity(moved[:, -3:], x, tau), plain.velocity(seq[:, -3:], x, tau))
    chunk, _, extras = head.sample(seq, True, torch.Generator().manual_seed(0))
    assert chunk.shape == (2, 3, 2) and extras["flow_path"].shape == (2, 5, 3, 2)


def test_flow_log_prob_needs_the_path():
    policy = tiny_policy(head="flow")
    greedy = policy.act(make_obs(1), sample=False)
    with pytest.raises(ValueError, match="flow_path"):
        policy.log_prob(None, greedy)


def test_value_head():
    policy = tiny_policy(head="gaussian")
    with pytest.raises(ValueError, match="no value head"):
        policy.value(make_obs(2))
    policy.attach_value_head()
    obs = make_obs(2)
    chunk = policy.act(obs, sample=True)
    v = policy.value(obs)
    assert v.shape == (2,)
    torch.testing.assert_close(policy.value(None, chunk.extras), v)


def test_bad_observations_give_clear_errors():
    policy = tiny_policy()
    obs = make_obs(1)
    with pytest.raises(ValueError, match="camera 'eye_in_hand'"):
        policy.act([{**obs[0], "rgb": {"agentview": obs[0]["rgb"]["agentview"]}}], sample=False)
    with pytest.raises(ValueError, match="lacks 'instruction'"):
        policy.act([{k: v for k, v in obs[0].items() if k != "instruction"}], sample=False)
    with pytest.raises(ValueError, match="proprio must have 8"):
        policy.act([{**obs[0], "proprio": obs[0]["proprio"][:5]}], sample=False)
    with pytest.raises(ValueError, match="empty"):
        policy.act([], sample=False)
    # Cameras may also be named NAME_rgb, as in the HDF5 files.
    renamed = [{**obs[0], "rgb": {f"{k}_rgb": v for k, v in obs[0]["rgb"].items()}}]
    assert torch.equal(policy.act(renamed, sample=False).actions,
                       policy.act(obs, sample=False).actions)


def test_bad_config_gives_clear_errors():
    with pytest.raises(ValueError, match="unknown head"):
        tiny_policy(head="diffusion")
    with pytest.raises(ValueError, match="lora_targets"):
        tiny_policy(lora_rank=2, lora_targets=("everything",))
    with pytest.raises(ValueError, match="flow.sde_sigma"):
        tiny_policy(head="flow", flow={"sde_sigma": 0.0})
    with pytest.raises(ValueError, match="aux_token.weight must be >= 0"):
        tiny_policy(head="flow", aux_token={"weight": float("nan")})
    with pytest.raises(ValueError, match="token head needs none"):
        tiny_policy(head="token", aux_token={"weight": 1.0})
    with pytest.raises(ValueError, match="needs aux_token.weight > 0"):
        tiny_policy(head="flow", aux_token={"insulate_backbone": True})
    with pytest.raises(ValueError, match="needs chunk_size"):
        FlowHead(d=8, action_dim=2, heads=2, ff=16, context=True)


def test_prefix_conditioning_keeps_the_given_actions_and_an_exact_density():
    policy = tiny_policy(head="flow")
    obs = make_obs(3)
    k = policy.chunk_size
    given = policy.act(obs, sample=False).actions[:, :2].numpy().astype(np.float64) * 0.5
    given[1] = np.nan  # the second observation has no plan yet: all of its chunk is free
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0), prefix=given)
    np.testing.assert_allclose(chunk.actions[[0, 2], :2].numpy(), given[[0, 2]], atol=1e-5)
    mask = chunk.extras["flow_given"]
    assert mask[0, :2].all() and not mask[0, 2:].any() and not mask[1].any()
    # sampled and recomputed log-probs agree, and the given steps add no density terms
    torch.testing.assert_close(policy.log_prob(obs, chunk), chunk.log_prob, rtol=1e-4, atol=1e-3)
    terms = policy.log_prob_terms(obs, chunk).view(3, -1, k, 7)
    assert (terms[0, :, :2] == 0).all() and (terms[1] != 0).all()
    # with nothing given, the free chunk's log-prob covers all k steps
    free = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert not free.extras["flow_given"].any()


def test_prefix_conditioning_needs_the_flow_head():
    policy = tiny_policy(head="token")
    with pytest.raises(ValueError, match="needs the flow head"):
        policy.act(make_obs(1), sample=False, prefix=np.zeros((1, 1, 7)))
