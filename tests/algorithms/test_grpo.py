"""GRPO: advantages per trajectory, trainable vs frozen parameters, degenerate groups,
learning a tiny task, configuration errors."""

import pytest
import torch

import smoothvla.algorithms.grpo as grpo_module
from smoothvla.algorithms.grpo import GRPO, GRPOConfig
from smoothvla.algorithms.trainer import TrainConfig
from smoothvla.rewards import RewardConfig


def _score(trajs, rewards):
    for t, r in zip(trajs, rewards):
        t.reward, t.reward_terms = float(r), {"success": float(t.success)}


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_group_advantage_is_applied_to_every_chunk_of_its_trajectory(
    fake_policy, collect_groups, monkeypatch
):
    trajs = collect_groups(fake_policy, init_ids=(0, 1), size=2)
    # group 0: rewards 1, 0 -> advantages +1, -1; group 1: 0.5, 0.1 -> +1, -1 (population std)
    _score(trajs, [1.0, 0.0, 0.5, 0.1])
    seen = []
    real = grpo_module.clipped_surrogate

    def spy(logp_new, logp_old, adv, eps_low, eps_high):
        seen.append((logp_old.clone(), adv.clone()))
        return real(logp_new, logp_old, adv, eps_low, eps_high)

    monkeypatch.setattr(grpo_module, "clipped_surrogate", spy)
    algo = GRPO(fake_policy, GRPOConfig(lr=1e-3, minibatch_chunks=1000))
    stats = algo.update(trajs)
    ((logp_old, adv),) = seen
    expected_adv, expected_logp = [], []
    for t, a in zip(trajs, [1.0, -1.0, 1.0, -1.0]):
        expected_adv += [a] * t.num_chunks
        expected_logp += t.log_probs.tolist()
    # minibatch order is shuffled: compare as multisets of (log-prob, advantage) pairs
    got = sorted(zip(logp_old.tolist(), adv.tolist()))
    want = sorted(zip(expected_logp, expected_adv))
    assert len(got) == len(want) == sum(t.num_chunks for t in trajs)
    for (lg, ag), (lw, aw) in zip(got, want):
        assert lg == pytest.approx(lw, abs=1e-5) and ag == pytest.approx(aw, abs=1e-5)
    assert stats["trajectories_used"] == 4 and stats["chunks"] == len(want)


def test_token_level_ratio_matches_the_chunk_level_loss_on_policy(fake_policy, collect_groups):
    """On-policy, every ratio is 1: the token-level surrogate is -mean(A) like the chunk
    level one, nothing is clipped, and the recomputed factors sum to the sampled log-probs."""
    trajs = collect_groups(fake_policy, init_ids=(0, 1), size=2)
    _score(trajs, [1.0, 0.0, 0.5, 0.1])
    chunk_stats = GRPO(fake_policy, GRPOConfig(lr=1e-9, minibatch_chunks=1000)).update(trajs)
    token_stats = GRPO(
        fake_policy, GRPOConfig(lr=1e-9, minibatch_chunks=1000, ratio_level="token")
    ).update(trajs)
    assert token_stats["pg_loss"] == pytest.approx(chunk_stats["pg_loss"], abs=1e-5)
    assert token_stats["clip_frac"] == 0.0
    assert token_stats["logp_old_gap"] < 1e-4
    # the per-token KL to the reference is 0 before the policy moves, and grows after
    algo = GRPO(fake_policy, GRPOConfig(lr=5e-2, minibatch_chunks=1000, ratio_level="token",
                                        beta=0.1))
    first = algo.update(trajs)
    assert first["kl_ref"] == pytest.approx(0.0, abs=1e-6)
    second = algo.update(trajs)
    assert 0.0 < second["kl_ref"] < 10.0


def test_token_level_update_clips_per_token(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0,), size=4)
    _score(trajs, [1.0, 0.0, 0.3, 0.0])
    before = _snapshot(fake_policy)
    # several minibatch steps at a large rate: later minibatches see ratios far from 1
    stats = GRPO(
        fake_policy, GRPOConfig(lr=5e-2, minibatch_chunks=2, epochs=3, ratio_level="token")
    ).update(trajs)
    assert 0.0 < stats["clip_frac"] < 1.0
    assert any(not torch.equal(before[n], p) for n, p in fake_policy.named_parameters())


def test_one_update_changes_trainable_parameters_only(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0,), size=4)
    _score(trajs, [1.0, 0.0, 0.3, 0.0])
    before = _snapshot(fake_policy)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-2, beta=0.1)).update(trajs)
    after = _snapshot(fake_policy)
    for name in before:
        changed = not torch.equal(before[name], after[name])
        # the encoder is frozen; GRPO has no critic, so the value head gets no gradient
        assert changed == (not name.startswith(("encoder.", "value_head."))), name
    for key in (
        "success_rate",
        "mean_jerk",
        "frac_all_fail",
        "frac_all_success",
        "clip_frac",
        "approx_kl",
        "kl_ref",
        "logp_mean",
        "entropy_est",
        "grad_norm",
        "reward/success",
    ):
        assert key in stats and stats[key] == stats[key], key  # present and not NaN
    assert stats["weight_drift"] > 0 and stats["updates"] == 1


def test_reference_swaps_weights_in_and_back(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, size=2)
    _score(trajs, [1.0, 0.0])
    algo = GRPO(fake_policy, GRPOConfig(lr=1e-2))
    algo.update(trajs)
    live = _snapshot(fake_policy)
    with algo.reference.active():
        assert torch.equal(fake_policy.trunk.weight, algo.reference.values[1])
        assert not torch.equal(fake_policy.trunk.weight, live["trunk.weight"])
    assert all(torch.equal(live[n], p) for n, p in fake_policy.named_parameters())


def test_dynamic_sampling_drops_groups_without_reward_spread(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0, 1, 2), size=2)
    # group 0 all-fail, group 1 informative, group 2 lost a member to a crashed worker
    _score(trajs, [0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    trajs = trajs[:5]
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3)).update(trajs)
    assert stats["groups_dropped"] == 1 and stats["groups_too_small"] == 1
    assert stats["trajectories_used"] == 2 and stats["groups"] == 3
    # nothing informative: no step at all
    trajs = collect_groups(fake_policy, init_ids=(0,), size=3)
    _score(trajs, [0.0, 0.0, 0.0])
    before = _snapshot(fake_policy)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3)).update(trajs)
    assert stats["skipped"] == 1 and stats["frac_all_fail"] == 1.0
    assert all(torch.equal(before[n], p) for n, p in fake_policy.named_parameters())


def test_grpo_learns_the_point_mass_task(tmp_path):
    from fake_run import build

    trainer, _ = build(tmp_path / "run", iterations=30)
    history = trainer.run()
    first = sum(s["success_rate"] for s in history[:3]) / 3
    last = sum(s["success_rate"] for s in history[-3:]) / 3
    assert first < 0.3 and last >= 0.8, (first, last)
    assert history[-1]["weight_drift"] > history[0]["weight_drift"]


def test_update_needs_rewards_and_chunks(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, size=2)
    with pytest.raises(ValueError, match="no finite reward"):
        GRPO(fake_policy, GRPOConfig()).update(trajs)
    _score(trajs, [1.0, 0.0])
    trajs[0].chunks = None
    with pytest.raises(ValueError, match="no recorded chunks"):
        GRPO(fake_policy, GRPOConfig()).update(trajs)
    with pytest.raises(ValueError, match="nn.Module"):
        GRPO(object(), GRPOConfig())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GRPOConfig(eps_low=1.5), "eps_low must be in"),
        (lambda: GRPOConfig(eps_low=0.0), "eps_low must be in"),
        (lambda: GRPOConfig(eps_high=-0.1), "eps_high must be in"),
        (lambda: GRPOConfig(beta=-1.0), "beta"),
        (lambda: GRPOConfig(lr=0.0), r"lr must be in \(0, 1\]"),
        (lambda: GRPOConfig(ratio_level="step"), "ratio_level must be 'chunk' or 'token'"),
        (lambda: TrainConfig(tasks=("t",), group_size=1), "group_size must be >= 2"),
        (
            lambda: TrainConfig(tasks=("t",), reward=RewardConfig(name="dense")),
            "unknown reward 'dense'",
        ),
        (lambda: TrainConfig(tasks=("t",), algorithm="sac"), "unknown algorithm 'sac'"),
        (lambda: TrainConfig(tasks=("t",), iterations=0), "iterations must be >= 1"),
    ],
)
def test_bad_configs_give_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
