"""Every numeric field of every config is checked when the config is built: NaN, inf and
absurd values are a UserError naming the field, never a silently different run."""

import dataclasses
import math

import pytest

from smoothvla.algorithms.dpo import DPOConfig
from smoothvla.algorithms.grpo import GRPOConfig
from smoothvla.algorithms.ppo import PPOConfig
from smoothvla.algorithms.sft import SFTConfig
from smoothvla.algorithms.trainer import TrainConfig
from smoothvla.errors import UserError, check_fields, check_number, in_range
from smoothvla.policies.head_configs import AuxTokenConfig, FlowHeadConfig, TokenHeadConfig
from smoothvla.policies.overrides import PolicyOverrides
from smoothvla.policies.vla import VLAConfig
from smoothvla.rewards import RewardConfig
from smoothvla.study import StudyConfig


def _commands():
    from smoothvla.commands import collect, eval as eval_cmd, jerk, train

    return [
        (train.Config, dict(policy="p", tasks=("t",))),
        (eval_cmd.Config, dict(checkpoints=("p",))),
        (jerk.Config, dict(paths=("x.npz",))),
        (collect.Config, {}),
    ]


CONFIGS = [
    (GRPOConfig, {}), (PPOConfig, {}), (DPOConfig, {}), (SFTConfig, {}), (TrainConfig, {}),
    (RewardConfig, {}), (VLAConfig, {}), (StudyConfig, {}),
]


def _numeric_fields(cls, required):
    cfg = cls(**required)
    return [f.name for f in dataclasses.fields(cls)
            if isinstance(getattr(cfg, f.name), (int, float))
            and not isinstance(getattr(cfg, f.name), bool)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_numeric_field_of_every_config_rejects_nan_and_inf(bad):
    checked = 0
    for cls, required in CONFIGS + _commands():
        for name in _numeric_fields(cls, required):
            flag = "--" + name.replace("_", "-")
            with pytest.raises(UserError, match=f"^({name}|{flag}) must be "):
                cfg = cls(**required, **{name: bad})
                getattr(cfg, "validate", lambda: None)()  # collect checks in run()
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("cls, field, value", [
    (GRPOConfig, "lr", 1e30),
    (GRPOConfig, "lr", 0.0),
    (GRPOConfig, "eps_low", 1.0),
    (GRPOConfig, "weight_decay", -0.1),
    (GRPOConfig, "adv_eps", -1.0),
    (PPOConfig, "value_lr", 5.0),
    (PPOConfig, "vf_coef", -1.0),
    (DPOConfig, "lr", 2.0),
    (DPOConfig, "beta", 0.0),
    (SFTConfig, "lr", 10.0),
    (SFTConfig, "grad_clip", -1.0),
    (SFTConfig, "min_lr_ratio", 1.5),
    (SFTConfig, "warmup_steps", -1),
    (RewardConfig, "noise_std", -0.1),
    (RewardConfig, "lam", 1e9),
    (TokenHeadConfig, "temperature", 0.0),
    (FlowHeadConfig, "sde_sigma", 0.0),
    (AuxTokenConfig, "weight", -1.0),
    (VLAConfig, "image_size", 0),
    (StudyConfig, "dense_jerk_weight", -1.0),
    (PolicyOverrides, "temperature", -1.0),
])
def test_absurd_values_are_user_errors(cls, field, value):
    with pytest.raises(UserError, match=field):
        cls(**{field: value})


def test_command_flags_reject_nan():
    from smoothvla.commands import eval as eval_cmd, train

    with pytest.raises(UserError, match="temperature"):
        eval_cmd.Config(checkpoints=("p",), overrides=PolicyOverrides(temperature=math.nan))
    with pytest.raises(UserError, match="temperature"):
        train.Config(policy="p", tasks=("t",), overrides=PolicyOverrides(temperature=math.nan))


def test_check_helpers():
    assert in_range(0.0, "[0, 1]") and not in_range(0.0, "(0, 1]")
    assert in_range(1.0, "(0, 1]") and not in_range(1.0, "[0, 1)")
    assert in_range(5, ">= 5") and not in_range(5, "> 5") and in_range(-3, "<= 1")
    assert in_range(1e300, "(0, inf)")
    check_number("x", None, "> 0")  # optional fields pass
    with pytest.raises(UserError, match=r"x must be > 0, got -1"):
        check_number("x", -1, "> 0")
    with pytest.raises(UserError, match="finite"):
        check_number("x", math.nan)

    @dataclasses.dataclass
    class C:
        a: float = 1.0
        b: str = "s"

    check_fields(C(), a="> 0")
    with pytest.raises(TypeError, match="no fields"):  # a typo in a config is a bug
        check_fields(C(), z="> 0")


def test_load_policy_refuses_nan_weights(tmp_path):
    import numpy as np
    import torch

    from smoothvla.policies import CompactVLA, Normalizer
    from smoothvla.policies.vla import load_policy

    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (50, 7)), rng.normal(size=(50, 8)))
    policy = CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32,
                                  d_model=16, n_layers=1, n_heads=2, ff_dim=32,
                                  flow=FlowHeadConfig(layers=1, steps=2), chunk_size=4), norm)
    policy.save(tmp_path / "ok")
    load_policy(tmp_path / "ok")  # a healthy checkpoint loads
    with torch.no_grad():
        next(p for p in policy.parameters() if p.is_floating_point()).view(-1)[0] = float("nan")
    policy.save(tmp_path / "diverged")
    with pytest.raises(UserError, match="NaN or inf.*diverged"):
        load_policy(tmp_path / "diverged")


def test_check_parses_names_the_flag():
    from smoothvla.errors import check_parses

    assert check_parses("--x", "2.5", float) == 2.5
    with pytest.raises(UserError, match=r"^--x 'high': could not convert.*; use a number$"):
        check_parses("--x", "high", float, "use a number")
