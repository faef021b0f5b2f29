"""One config per action head: the nested layout, the flat layout of older checkpoints (they
load and act bit for bit as the same weights saved in the new layout), settings of another
head refused, and the flat sampling overrides of `load_policy`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from policy_helpers import flat_config, make_obs, tiny_config, tiny_policy
from smoothvla.cli import main
from smoothvla.errors import UserError
from smoothvla.policies import DemoBatch, VLAConfig, load_policy
from smoothvla.policies.head_configs import (AuxTokenConfig, DCTHeadConfig, FlowHeadConfig,
                                             GaussianHeadConfig, TokenHeadConfig,
                                             nest_flat_fields)
from smoothvla.policies.packaged import resolve_checkpoint

torch.set_num_threads(1)

VARIANTS = {
    "token": dict(head="token", token={"temperature": 0.7}),
    "dct": dict(head="dct", dct={"coefficients": 2, "gripper_steps": False, "temperature": 0.5}),
    "flow": dict(head="flow", flow={"context": True, "sde_sigma": 0.3, "layers": 2},
                 aux_token={"weight": 0.5, "insulate_backbone": True}),
    "gaussian": dict(head="gaussian", gaussian={"state_std": True, "init_log_std": -0.5},
                     aux_token={"weight": 1.0}),
}


def _outputs(policy, obs):
    """Greedy and sampled chunks, log-probabilities and an SFT loss: all must match exactly."""
    greedy = policy.act(obs, sample=False)
    sampled = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    actions = np.random.default_rng(1).uniform(-0.5, 0.5, (len(obs), policy.chunk_size, 7))
    sft = policy.sft_loss(DemoBatch(actions.astype(np.float32), obs=obs))
    return {"greedy": greedy.actions, "sampled": sampled.actions, "logp": sampled.log_prob,
            "relogp": policy.log_prob(obs, sampled).detach(), "sft_loss": sft.loss.detach(),
            "predicted": sft.predicted.detach()}


def _assert_same(a, b):
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _perturbed(policy):
    with torch.no_grad():  # away from the init, so a silently re-initialized load would differ
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    if policy.action_head_needs_fit():
        policy.fit_action_head(np.random.default_rng(2).uniform(-0.7, 0.7, (64, 4, 7)))
    return policy


@pytest.mark.parametrize("variant", VARIANTS)
def test_flat_config_loads_and_acts_as_the_nested_one(tmp_path, variant):
    policy = _perturbed(tiny_policy(**VARIANTS[variant], seed=3))
    policy.save(tmp_path / "nested")
    meta = json.loads((tmp_path / "nested" / "config.json").read_text())
    assert meta["version"] == 2
    # the same weights under the flat config.json that version 1 wrote
    (tmp_path / "flat").mkdir()
    for name in ("model.safetensors", "normalizer.json"):
        (tmp_path / "flat" / name).write_bytes((tmp_path / "nested" / name).read_bytes())
    (tmp_path / "flat" / "config.json").write_text(json.dumps(
        {**meta, "version": 1, "config": flat_config(policy.cfg)}))
    nested, flat = load_policy(tmp_path / "nested"), load_policy(tmp_path / "flat")
    assert flat.cfg == nested.cfg == policy.cfg
    obs = make_obs(3)
    _assert_same(_outputs(flat, obs), _outputs(nested, obs))
    _assert_same(_outputs(flat, obs), _outputs(policy, obs))
    flat.save(tmp_path / "resaved")  # a flat checkpoint saved again is written nested
    assert json.loads((tmp_path / "resaved" / "config.json").read_text()) == meta


@pytest.mark.parametrize("name", ["demo-token", "demo-token-history"])
def test_shipped_flat_checkpoints_act_the_same_saved_nested(tmp_path, name):
    shipped = load_policy(f"smoothvla:{name}")
    meta = json.loads((Path(resolve_checkpoint(f"smoothvla:{name}")) / "config.json").read_text())
    assert meta["version"] == 1 and "n_bins" in meta["config"]  # the flat layout
    assert shipped.cfg.head == "token" and shipped.cfg.token == TokenHeadConfig()
    shipped.save(tmp_path / "nested", trainable_only=True)
    nested = load_policy(tmp_path / "nested")
    assert nested.cfg == shipped.cfg
    obs = make_obs(2, size=128)
    for o in obs:
        o["prev_actions"] = np.random.default_rng(0).uniform(-0.5, 0.5, (16, 7)).astype(np.float32)
    _assert_same(_outputs(nested, obs), _outputs(shipped, obs))


def test_saved_config_holds_the_acting_heads_settings_only(tmp_path):
    tiny_policy(head="token").save(tmp_path / "tok")
    saved = json.loads((tmp_path / "tok" / "config.json").read_text())["config"]
    assert saved["token"] == {"bins": 16, "temperature": 1.0}
    assert not {"dct", "flow", "gaussian", "aux_token", "n_bins", "temperature"} & set(saved)
    tiny_policy(head="flow", aux_token={"weight": 0.5}).save(tmp_path / "flow")
    saved = json.loads((tmp_path / "flow" / "config.json").read_text())["config"]
    assert saved["flow"] == {"steps": 4, "sde_sigma": 0.5, "layers": 1, "context": False}
    assert saved["aux_token"] == {"weight": 0.5, "bins": 16, "insulate_backbone": False}


def test_nest_flat_fields_by_hand():
    flat = {"head": "flow", "d_model": 32, "n_bins": 16, "temperature": 0.3,
            "dct_coefficients": 2, "dct_gripper_steps": False, "flow_steps": 4,
            "flow_sde_sigma": 0.2, "flow_layers": 1, "flow_context": True,
            "aux_token_weight": 0.5, "insulate_backbone": True, "gaussian_state_std": False,
            "gaussian_init_log_std": -1.0}
    assert nest_flat_fields(flat) == {
        "head": "flow", "d_model": 32,
        "flow": {"steps": 4, "sde_sigma": 0.2, "layers": 1, "context": True},
        "aux_token": {"weight": 0.5, "bins": 16, "insulate_backbone": True}}
    # the token and DCT heads share n_bins and temperature; an unused aux head is dropped
    assert nest_flat_fields({**flat, "head": "dct", "aux_token_weight": 0.0,
                             "insulate_backbone": False}) == {
        "head": "dct", "d_model": 32,
        "dct": {"coefficients": 2, "gripper_steps": False, "bins": 16, "temperature": 0.3}}
    nested = {"head": "token", "token": {"bins": 8}}
    assert nest_flat_fields(nested) == nested
    with pytest.raises(UserError, match="both the flat fields"):
        nest_flat_fields({"head": "token", "n_bins": 8, "token": {"bins": 8}})


@pytest.mark.parametrize("head, other, settings", [
    ("token", "flow", FlowHeadConfig(steps=30)),
    ("flow", "token", TokenHeadConfig(temperature=0.5)),
    ("gaussian", "flow", FlowHeadConfig(context=True)),
    ("dct", "gaussian", GaussianHeadConfig(state_std=True)),
    ("flow", "dct", DCTHeadConfig(coefficients=2)),
])
def test_settings_of_another_head_are_refused(head, other, settings):
    with pytest.raises(UserError, match=rf"{other}\..* the {other} head, but the policy's head "
                                        rf"is '{head}'"):
        VLAConfig(head=head, **{other: settings})
    with pytest.raises(UserError, match=f"the {other} head"):
        VLAConfig.from_dict({"head": head, other: dict(settings.__dict__)})


def test_another_heads_flag_is_refused_on_the_command_line(tmp_path, capsys):
    argv = ["sft", "--data", "demos.hdf5", "--run-dir", str(tmp_path / "run"),
            "--policy.head", "token", "--policy.flow.steps", "30"]
    with pytest.raises(SystemExit):  # tyro reports a nested config's error and exits
        main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert "flow.steps=30 sets the flow head, but the policy's head is 'token'" in err
    assert not (tmp_path / "run").exists()


def test_head_settings_are_checked_and_named():
    with pytest.raises(UserError, match=r"token.bins must be >= 2, got 1"):
        TokenHeadConfig(bins=1)
    with pytest.raises(UserError, match=r"flow.steps must be >= 1"):
        FlowHeadConfig(steps=0)
    with pytest.raises(UserError, match=r"aux_token.bins = 16 sets the auxiliary token head, "
                                        r"which is off"):
        AuxTokenConfig(bins=16)
    with pytest.raises(UserError, match=r"unknown fields \['flow.stepz'\]"):
        VLAConfig.from_dict({"head": "flow", "flow": {"stepz": 3}})
    with pytest.raises(UserError, match="flow must be a FlowHeadConfig, got TokenHeadConfig"):
        VLAConfig(head="flow", flow=TokenHeadConfig())
    with pytest.raises(UserError, match="are a TokenHeadConfig, got FlowHeadConfig"):
        VLAConfig().with_head("token", FlowHeadConfig())


def test_with_head_resets_the_other_heads():
    cfg = tiny_config("flow", flow={"layers": 3}, aux_token={"weight": 1.0})
    token = cfg.with_head("token", TokenHeadConfig(bins=8))
    assert token.head == "token" and token.token.bins == 8 and token.head_config is token.token
    assert token.flow == FlowHeadConfig() and not token.aux_token.enabled
    assert token.d_model == cfg.d_model and cfg.flow.layers == 3  # the original is unchanged


def test_load_policy_maps_flat_sampling_overrides_onto_the_head(tmp_path):
    tiny_policy(head="token").save(tmp_path / "tok")
    tiny_policy(head="flow").save(tmp_path / "flow")
    tok = load_policy(tmp_path / "tok", temperature=0.5)
    assert tok.cfg.token.temperature == 0.5 and tok.head.temperature == 0.5
    flow = load_policy(tmp_path / "flow", flow_steps=30, flow_sde_sigma=0.2)
    assert (flow.cfg.flow.steps, flow.cfg.flow.sde_sigma) == (30, 0.2)
    assert (flow.head.steps, flow.head.sigma) == (30, 0.2)
    # a sampling setting of another head is unused (the commands refuse such flags first)
    assert load_policy(tmp_path / "flow", temperature=0.5).cfg == load_policy(tmp_path / "flow").cfg
    assert load_policy(tmp_path / "tok", flow_steps=30).cfg.flow == FlowHeadConfig()
    settings = FlowHeadConfig(steps=8, layers=1)  # VLAConfig fields by name
    assert load_policy(tmp_path / "flow", flow=settings).head.steps == 8
    with pytest.raises(UserError, match="unknown policy override 'n_bins'"):
        load_policy(tmp_path / "tok", n_bins=8)
