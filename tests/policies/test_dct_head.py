"""The DCT action head: the basis by hand, exact log-probabilities, smoothness by construction,
bin ranges fitted from data and saved, and a GRPO update through it."""

import math

import numpy as np
import pytest
import torch

from policy_helpers import make_obs, tiny_policy
from smoothvla.policies import ActionChunk, DemoBatch, MissingStatisticsError, load_policy
from smoothvla.policies.heads import DCTHead, MissingBinRangesError, dct_matrix

K = 4  # TINY's chunk size


def fitted_policy(**overrides):
    """A tiny DCT policy whose bin ranges come from random chunks in env units."""
    policy = tiny_policy(head="dct", **overrides)
    rng = np.random.default_rng(7)
    policy.fit_action_head(rng.uniform(-0.8, 0.8, (200, policy.chunk_size, 7)))
    return policy


def test_dct_of_a_known_chunk_by_hand():
    d = dct_matrix(4)
    # Row 0 is the mean times sqrt(k); row 1 at t = 0 is sqrt(2/4) cos(pi/8).
    assert d[0].tolist() == pytest.approx([0.5] * 4)
    assert d[1, 0].item() == pytest.approx(math.sqrt(0.5) * math.cos(math.pi / 8))
    assert d[2].tolist() == pytest.approx([math.sqrt(0.5) * math.cos(math.pi * (t + 0.5) * 2 / 4)
                                           for t in range(4)])
    torch.testing.assert_close(d @ d.T, torch.eye(4), atol=1e-6, rtol=0)
    # A constant chunk has only a DC coefficient: c0 = sqrt(k) * value.
    head = DCTHead(8, 7, chunk_size=4, n_coefficients=4, gripper_dim=6)
    x = torch.full((1, 4, 7), 0.3)
    c = head.coefficients(x)
    assert c.shape == (1, 4, 6)
    assert c[0, 0].tolist() == pytest.approx([0.6] * 6)
    assert c[0, 1:].abs().max().item() < 1e-6
    # A linear ramp 0, 1, 2, 3 has c1 = sum_t t sqrt(1/2) cos(pi (t + 1/2) / 4).
    ramp = torch.arange(4.0)[None, :, None].expand(1, 4, 7)
    c1 = sum(t * math.sqrt(0.5) * math.cos(math.pi * (t + 0.5) / 4) for t in range(4))
    assert head.coefficients(ramp)[0, 1, 0].item() == pytest.approx(c1)


def test_round_trip_with_all_coefficients():
    head = DCTHead(8, 7, chunk_size=5, n_coefficients=5, gripper_dim=6)
    x = torch.randn(3, 5, 7)
    back = head.chunk_of(head.coefficients(x), x[..., 6])
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)


def test_bin_centres_and_tokens_by_hand():
    head = DCTHead(8, 2, chunk_size=2, n_coefficients=1, n_bins=4, gripper_dim=None)
    head.coef_low.fill_(-1.0)
    head.coef_high.fill_(1.0)  # bins [-1, -.5), [-.5, 0), [0, .5), [.5, 1]; centres -.75 .. .75
    c = torch.tensor([[[-2.0, 0.1]]])
    bins = head.coef_bins_of(c)
    assert bins.tolist() == [[[0, 2]]]  # out of range: the end bin
    assert head.coef_centers(bins).tolist() == [[[-0.75, 0.25]]]
    # One DC coefficient c over k = 2 steps: each step is c / sqrt(2).
    chunk = head.chunk_of_tokens(torch.tensor([[1, 3]]))
    torch.testing.assert_close(chunk, torch.tensor([[[-0.25, 0.75]] * 2]) / math.sqrt(2))


def test_fit_sets_percentile_ranges():
    head = DCTHead(8, 2, chunk_size=2, n_coefficients=1, n_bins=4, gripper_dim=1)
    assert not head.fitted
    values = torch.linspace(0, 1, 101)  # step values: DC coefficient = sqrt(2) * value
    x = torch.stack([values, values], 1)[:, :, None].expand(-1, -1, 2).contiguous()
    head.fit(x)
    assert head.fitted
    assert head.coef_low.item() == pytest.approx(0.01 * math.sqrt(2), rel=1e-4)
    assert head.coef_high.item() == pytest.approx(0.99 * math.sqrt(2), rel=1e-4)
    head.fit(torch.zeros(10, 2, 2))  # a dimension that never moves: a minimum range
    assert head.coef_low.item() == pytest.approx(-1e-2) and head.coef_high.item() == pytest.approx(1e-2)


def test_missing_bin_ranges_give_a_clear_error():
    policy = tiny_policy(head="dct")
    assert policy.action_head_needs_fit()
    with pytest.raises(MissingBinRangesError, match="fit_action_head"):
        policy.act(make_obs(1), sample=False)
    assert issubclass(MissingBinRangesError, MissingStatisticsError)
    policy.fit_action_head(np.zeros((3, K, 7)))
    assert not policy.action_head_needs_fit()
    assert not tiny_policy(head="token").action_head_needs_fit()


@pytest.mark.parametrize("gripper", [True, False])
def test_sampled_log_prob_matches_recomputation_and_terms_sum(gripper):
    policy = fitted_policy(dct={"coefficients": 2, "temperature": 0.7, "gripper_steps": gripper})
    obs = make_obs(5)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(1))
    assert chunk.actions.shape == (5, K, 7) and chunk.actions.abs().max() <= 1.0
    torch.testing.assert_close(policy.log_prob(None, chunk), chunk.log_prob, rtol=1e-5, atol=1e-4)
    terms = policy.log_prob_terms(None, chunk)
    assert terms.shape == (5, 2 * (6 if gripper else 7) + (K if gripper else 0))
    assert (terms <= 0).all()
    torch.testing.assert_close(terms.sum(-1), chunk.log_prob, rtol=1e-5, atol=1e-4)
    # From scratch: re-encoded observations and the tokens re-derived from the actions.
    scratch = policy.log_prob(obs, ActionChunk(chunk.actions, chunk.log_prob, {}))
    unclipped = (policy.normalizer.denormalize_actions(
        policy.head.chunk_of_tokens(chunk.extras["dct_tokens"])).abs() <= 1).all((1, 2))
    assert unclipped.any()
    torch.testing.assert_close(scratch[unclipped], chunk.log_prob[unclipped], rtol=1e-5, atol=1e-4)
    scratch.sum().backward()
    assert policy.head.coef_out.weight.grad.abs().sum() > 0


def test_log_prob_by_hand_from_the_logits():
    policy = fitted_policy(dct={"coefficients": 1, "temperature": 2.0})
    chunk = policy.act(make_obs(1), sample=True, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = policy.head.logits(policy.head_states(policy._features(None, chunk.extras)))[0] / 2.0
    tokens = chunk.extras["dct_tokens"][0]
    expected = sum(torch.log_softmax(logits[i], -1)[tokens[i]].item() for i in range(len(tokens)))
    assert chunk.log_prob.item() == pytest.approx(expected, rel=1e-5)


def test_greedy_is_deterministic_and_sampling_is_not():
    policy = fitted_policy()
    obs = make_obs(2)
    a, b = policy.act(obs, sample=False), policy.act(obs, sample=False)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.log_prob, torch.zeros(2))
    s1 = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    s2 = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(1))
    s1b = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1.actions, s1b.actions) and not torch.equal(s1.actions, s2.actions)


def _third_difference(actions):
    return (actions[:, 3:] - 3 * actions[:, 2:-1] + 3 * actions[:, 1:-2] - actions[:, :-3]).abs().mean()


def test_low_frequency_chunks_are_smoother_than_per_step_tokens():
    """Sampled at a high temperature (near-uniform tokens), a DCT chunk with M = 2 < k = 8
    is far smoother than a token-head chunk of independent per-step tokens."""
    dct = fitted_policy(chunk_size=8, dct={"coefficients": 2, "temperature": 50.0})
    token = tiny_policy(head="token", chunk_size=8, token={"temperature": 50.0})
    obs = make_obs(16)
    gen = torch.Generator().manual_seed(0)
    a_dct = dct.act(obs, sample=True, generator=gen).actions[..., :6]
    a_tok = token.act(obs, sample=True, generator=gen).actions[..., :6]
    assert _third_difference(a_dct) < 0.1 * _third_difference(a_tok)
    # With M = 2 each dimension is a + b cos(pi (t + 1/2) / k): the third difference of
    # such a chunk is small but not 0; with M = 1 the chunk is constant.
    const = fitted_policy(chunk_size=8, dct={"coefficients": 1}).act(obs, sample=True, generator=gen)
    assert _third_difference(const.actions[..., :6]) < 1e-6


def test_save_load_keeps_bins_and_outputs(tmp_path):
    policy = fitted_policy(seed=3, dct={"coefficients": 3})
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    assert torch.equal(loaded.head.coef_low, policy.head.coef_low)
    assert torch.equal(loaded.head.coef_high, policy.head.coef_high)
    obs = make_obs(3)
    assert torch.equal(loaded.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    again = loaded.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(chunk.actions, again.actions)
    torch.testing.assert_close(loaded.log_prob(None, chunk), chunk.log_prob, rtol=1e-5, atol=1e-4)
    # An unfitted policy saves NaN ranges and still refuses to act after loading.
    tiny_policy(head="dct").save(tmp_path / "unfitted")
    with pytest.raises(MissingBinRangesError):
        load_policy(tmp_path / "unfitted").act(obs, sample=False)


def test_sft_loss_and_predicted_chunk():
    policy = fitted_policy(dct={"coefficients": K})
    rng = np.random.default_rng(1)
    actions = torch.as_tensor(rng.uniform(-0.5, 0.5, (3, K, 7)), dtype=torch.float32)
    batch = DemoBatch(actions, torch.tensor([[1.0, 1, 1, 1]] * 3), obs=make_obs(3))
    out = policy.sft_loss(batch)
    loss, metrics, pred = out.loss, out.metrics, out.predicted
    assert pred.shape == (3, K, 7) and loss.requires_grad
    assert loss.item() == pytest.approx(math.log(16), rel=0.2)  # ~uniform over 16 bins at init
    assert 0 <= metrics["token_accuracy"] <= 1 and metrics["chunk_mse"] > 0


def test_bad_config_gives_clear_errors():
    with pytest.raises(ValueError, match="dct.coefficients"):
        tiny_policy(head="dct", dct={"coefficients": 5})
    with pytest.raises(ValueError, match="dct.coefficients"):
        tiny_policy(head="dct", dct={"coefficients": 0})
    with pytest.raises(ValueError, match="fit needs chunks"):
        tiny_policy(head="dct").fit_action_head(np.zeros((3, 2, 7)))


def test_one_grpo_update_changes_the_dct_policy():
    from smoothvla.algorithms.grpo import GRPO, GRPOConfig
    from smoothvla.rollout.collector import Collector, GroupRequest
    from smoothvla.rollout.fake_env import make_point_mass
    from smoothvla.rollout.pool import InProcessPool

    policy = fitted_policy(cameras=("agentview",), dct={"coefficients": 2})
    with InProcessPool(4, env_factory=make_point_mass, env_options={"image_size": 32}) as pool:
        trajs = Collector(policy, pool).collect(
            [GroupRequest("fake-reach/point-mass-v1", 0, 50, 4)], seed=0).trajectories
    for t, r in zip(trajs, [1.0, 0.0, 0.3, 0.0]):
        t.reward = r
        t.reward_terms = {"success": r}
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    stats = GRPO(policy, GRPOConfig(lr=1e-2, ratio_level="token")).update(trajs)
    after = policy.state_dict()
    assert not torch.equal(before["head.coef_out.weight"], after["head.coef_out.weight"])
    assert torch.equal(before["head.coef_low"], after["head.coef_low"])  # data statistics stay
    assert stats["logp_old_gap"] < 1e-3
