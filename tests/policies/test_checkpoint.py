"""save -> load round trips; corrupt, mismatched or incomplete checkpoints fail clearly."""

import json

import pytest
import torch

from policy_helpers import make_obs, tiny_policy
from smoothvla.policies import MissingStatisticsError, load_policy


@pytest.mark.parametrize("head", ["token", "flow", "gaussian"])
def test_save_load_gives_identical_outputs(tmp_path, head):
    policy = tiny_policy(head=head, value_head=True, seed=3)
    with torch.no_grad():  # move away from the init, so a silently re-initialized load would differ
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "ckpt")
    assert sorted(f.name for f in (tmp_path / "ckpt").iterdir()) == [
        "config.json", "model.safetensors", "normalizer.json"]
    assert [f.name for f in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind
    loaded = load_policy(tmp_path / "ckpt")
    obs = make_obs(3)
    assert torch.equal(loaded.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    again = loaded.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(chunk.actions, again.actions)
    torch.testing.assert_close(loaded.log_prob(obs, chunk), chunk.log_prob, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(loaded.value(obs), policy.value(obs))
    # Overwriting an existing checkpoint is atomic too.
    policy.save(tmp_path / "ckpt")
    assert [f.name for f in tmp_path.iterdir()] == ["ckpt"]


def test_auxiliary_token_head_round_trip(tmp_path):
    policy = tiny_policy(head="flow", aux_token={"weight": 0.5, "insulate_backbone": True}, seed=3,
                         flow={"context": True})
    with torch.no_grad():
        for p in policy.aux_head.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    assert loaded.cfg.aux_token.weight == 0.5
    assert loaded.cfg.flow.context and loaded.cfg.aux_token.insulate_backbone
    obs = make_obs(2)
    assert torch.equal(loaded.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)
    for (name, p), (_, q) in zip(policy.aux_head.named_parameters(), loaded.aux_head.named_parameters()):
        assert torch.equal(p, q), name


def test_lora_checkpoint_round_trip(tmp_path):
    policy = tiny_policy(head="flow", lora_rank=2, lora_targets=("fusion", "expert", "vision"))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    policy.save(tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    obs = make_obs(2)
    assert torch.equal(loaded.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)


def test_overrides_that_keep_shapes(tmp_path):
    tiny_policy(head="token").save(tmp_path / "c")
    assert load_policy(tmp_path / "c", temperature=0.5).head.temperature == 0.5


def test_flow_steps_override_changes_the_integration_only(tmp_path):
    policy = tiny_policy(head="flow")
    policy.save(tmp_path / "c")
    obs = make_obs(2)
    fine = load_policy(tmp_path / "c", flow_steps=30)
    assert fine.head.steps == 30
    same_weights = all(torch.equal(a, b) for a, b in zip(fine.state_dict().values(),
                                                          policy.state_dict().values()))
    assert same_weights
    assert not torch.equal(fine.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)


def test_missing_corrupt_and_mismatched(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_policy(tmp_path / "nothing")
    d = tmp_path / "c"
    tiny_policy().save(d)

    weights = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_policy(d)
    (d / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_policy(d)
    (d / "model.safetensors").write_bytes(weights)

    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "d_model": 64}}))
    with pytest.raises(ValueError, match="do not match the config"):
        load_policy(d)
    token = {k: v for k, v in meta["config"].items() if k != "flow"}
    (d / "config.json").write_text(json.dumps({**meta, "config": {**token, "head": "token"}}))
    with pytest.raises(ValueError, match="do not match the config"):
        load_policy(d)
    (d / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "wings": 2}}))
    with pytest.raises(ValueError, match="unknown fields"):
        load_policy(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is corrupt"):
        load_policy(d)
    (d / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a smoothvla-compact-vla checkpoint"):
        load_policy(d)
    (d / "config.json").write_text(json.dumps(meta))

    (d / "normalizer.json").unlink()
    with pytest.raises(MissingStatisticsError, match="normalizer"):
        load_policy(d)
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_policy(d)


def test_an_observation_that_is_not_a_dict_gets_a_clear_error():
    policy = tiny_policy()
    obs = make_obs(1)
    with pytest.raises(TypeError, match=r"env.reset\(\) returns \(obs, info\)"):
        policy.act([(obs[0], {})])
    with pytest.raises(ValueError, match="lacks 'proprio'"):
        policy.act([{k: v for k, v in obs[0].items() if k != "proprio"}])


def test_trainable_only_checkpoint_rebuilds_the_frozen_encoder(tmp_path):
    policy = tiny_policy(head="token", seed=3)
    with torch.no_grad():  # trained weights differ from a fresh build's
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "full")
    policy.save(tmp_path / "small", trainable_only=True)
    small = (tmp_path / "small" / "model.safetensors").stat().st_size
    assert small < (tmp_path / "full" / "model.safetensors").stat().st_size
    from safetensors.torch import load_file

    kept = load_file(tmp_path / "small" / "model.safetensors")
    assert policy.pretrained_keys() and not set(kept) & policy.pretrained_keys()
    loaded = load_policy(tmp_path / "small")
    for key, value in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
