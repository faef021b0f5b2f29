"""SFT from part of another checkpoint (`init_weights`), the zero-step conversion, and
training the action head alone on the frozen backbone (`head_only`): tiny policies, CPU."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from smoothvla.algorithms import sft
from smoothvla.algorithms.sft_transfer import HEAD_FIELDS, head_inputs
from smoothvla.policies import CompactVLA, Normalizer, VLAConfig, load_policy
from smoothvla.policies.head_configs import AuxTokenConfig

from test_sft import TINY, config, tiny, write_demos  # tests/algorithms/test_sft.py

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return write_demos(tmp_path_factory.mktemp("data") / "demos.hdf5")


def _normalizer(demos):
    frames = sft.load_frames((str(demos),), TINY.cameras, with_images=False)
    return Normalizer.from_arrays(frames.actions, frames.proprio)


def _saved(policy, path):
    policy.save(path)
    return str(path)


def _backbone(policy):
    return {k: v for k, v in policy.state_dict().items()
            if not k.startswith(("head.", "aux_head.", "value_head."))}


def test_head_fields_are_fields_of_the_policy_config():
    names = {f for f in VLAConfig.__dataclass_fields__}
    assert set(HEAD_FIELDS) <= names


def test_backbone_under_a_fresh_head_in_zero_steps(tmp_path, demos):
    token = CompactVLA(replace(tiny("token"), seed=3), _normalizer(demos))
    with torch.no_grad():  # weights that differ from any fresh policy's
        for p in token.parameters():
            p.add_(0.5)
    ckpt = _saved(token, tmp_path / "token")
    cfg = config(tmp_path, demos, init_from=ckpt, init_weights="backbone", steps=0,
                 policy=replace(tiny("flow", layers=2), vision_trainable_blocks=1))
    out = load_policy(sft.train(cfg))
    assert out.cfg.head == "flow" and out.cfg.flow.layers == 2
    # architecture fields other than the head's are the checkpoint's, not --policy's
    assert out.cfg.vision_trainable_blocks == 0 and out.cfg.seed == 3
    for k, v in _backbone(token).items():
        assert torch.equal(out.state_dict()[k], v), k
    # the head is fresh: the one a new policy of this config gets
    fresh = CompactVLA(out.cfg)
    head = {k: v for k, v in out.state_dict().items() if k.startswith("head.")}
    assert head and all(torch.equal(v, fresh.state_dict()[k]) for k, v in head.items())
    assert out.normalizer.to_json() == token.normalizer.to_json()
    assert (tmp_path / "run" / "checkpoints" / "step_0000000").is_dir()


def test_auxiliary_token_head_becomes_the_action_head(tmp_path, demos):
    aux = AuxTokenConfig(weight=1.0, bins=16, insulate_backbone=True)
    cotrained = CompactVLA(replace(TINY, aux_token=aux), _normalizer(demos))
    ckpt = _saved(cotrained, tmp_path / "cotrained")
    cfg = config(tmp_path, demos, init_from=ckpt, init_weights="aux-token-head", steps=0)
    out = load_policy(sft.train(cfg))
    assert out.cfg.head == "token" and out.aux_head is None and not out.cfg.aux_token.enabled
    assert out.cfg.token.bins == 16  # the auxiliary head's bins
    state = out.state_dict()
    for k, v in cotrained.aux_head.state_dict().items():
        assert torch.equal(state["head." + k], v), k
    for k, v in _backbone(cotrained).items():
        assert torch.equal(state[k], v), k
    # it acts as the auxiliary head would: the same greedy tokens from the same states
    h = torch.randn(2, TINY.chunk_size, TINY.d_model)
    assert torch.equal(out.head.logits(h), cotrained.aux_head.logits(h))
    # a checkpoint without an auxiliary head is refused with a clear error
    plain = _saved(CompactVLA(TINY, _normalizer(demos)), tmp_path / "plain")
    cfg = config(tmp_path, demos, run_dir=str(tmp_path / "run2"), init_from=plain,
                 init_weights="aux-token-head", steps=0)
    with pytest.raises(ValueError, match="no auxiliary token head"):
        sft.train(cfg)


def test_config_checks_of_the_transfer_options(tmp_path, demos):
    with pytest.raises(ValueError, match="give --init-from"):
        config(tmp_path, demos, init_weights="backbone")
    with pytest.raises(ValueError, match="steps 0 only with init_from"):
        config(tmp_path, demos, steps=0)
    with pytest.raises(ValueError, match="cached features"):
        config(tmp_path, demos, head_only=True, cache_features=False)


def test_head_only_trains_the_head_alone_on_the_backbone_states(tmp_path, demos):
    token = CompactVLA(tiny("token"), _normalizer(demos))
    ckpt = _saved(token, tmp_path / "token")
    cfg = config(tmp_path, demos, init_from=ckpt, init_weights="backbone", head_only=True,
                 steps=3, checkpoint_every=3, augment=True, aug_views=2, lr=1e-2,
                 warmup_steps=1, policy=replace(TINY, head="flow"))
    out = load_policy(sft.train(cfg))
    start = CompactVLA(out.cfg)  # the fresh flow head the run started from
    for k, v in _backbone(token).items():
        assert torch.equal(out.state_dict()[k], v), k  # frozen
    moved = [k for k, v in out.state_dict().items()
             if k.startswith("head.") and not torch.equal(v, start.state_dict()[k])]
    assert moved  # the head trained
    # the head's input: the backbone on view 0 (unshifted) of the cache, as acting computes it
    frames = sft.load_frames(cfg.data, TINY.cameras, with_images=True)
    sft.attach_features(out, frames, cfg, tmp_path / "run")
    lang = out.text.encode(frames.instructions)
    inputs = head_inputs(out, frames, lang)
    assert inputs.shape == (len(frames.actions), TINY.chunk_size, TINY.d_model)
    idx = np.array([0, 5, 13])
    images = np.stack([frames.images[c][idx] for c in TINY.cameras], 1)
    feats = {"vis_feat": out.encode_images(images), "lang_emb": lang[frames.instruction_id[idx]],
             "proprio": torch.as_tensor(frames.proprio[idx])}
    with torch.no_grad():
        # (the cache stores float16 features: equal to that precision)
        assert torch.allclose(inputs[idx], out.head_states(feats), atol=2e-3)
    # a log row per step, with the head's loss
    rows = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(rows) == 3 and all('"flow_loss"' in r or '"loss"' in r for r in rows)


def test_head_only_resume_reproduces_the_uninterrupted_run(tmp_path, demos):
    token = _saved(CompactVLA(tiny("token"), _normalizer(demos)), tmp_path / "tok")
    base = dict(init_from=token, init_weights="backbone", head_only=True, checkpoint_every=2,
                policy=replace(TINY, head="flow"))
    whole = load_policy(sft.train(config(tmp_path, demos, run_dir=str(tmp_path / "a"), steps=4,
                                         **base)))
    sft.train(config(tmp_path, demos, run_dir=str(tmp_path / "b"), steps=2, **base))
    resumed = load_policy(sft.train(config(tmp_path, demos, run_dir=str(tmp_path / "b"), steps=4,
                                           resume=True, **base)))
    for k, v in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
