"""One small config per action head, held by `VLAConfig` under the head's name.

`VLAConfig.head` names the acting head; `VLAConfig.token`, `.dct`, `.flow` and `.gaussian`
hold each head's settings (flags `--policy.flow.steps`, `--policy.token.temperature`, ...),
and `VLAConfig.aux_token` the auxiliary token head that may train beside a flow, Gaussian or
DCT head. A head reads only its own config; settings of a head the policy does not have are
refused (`VLAConfig.__post_init__`), not ignored.

Checkpoints written before this split hold every setting flat in one dict (`n_bins`,
`temperature`, `flow_steps`, ...); `nest_flat_fields` turns such a dict into this layout, so
they load with the same weights and act the same (`VLAConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from smoothvla.errors import UserError, check_number


def _check(cfg: Any, **ranges: str) -> None:
    """Every number of a head config finite (and in its range), named as 'flow.steps'."""
    for f in dataclasses.fields(cfg):
        check_number(f"{cfg.NAME}.{f.name}", getattr(cfg, f.name), ranges.pop(f.name, None))
    if ranges:
        raise TypeError(f"{type(cfg).__name__} has no fields {sorted(ranges)}")


@dataclass
class TokenHeadConfig:
    """The token head (`head = 'token'`): every action value one token over uniform bins."""

    NAME: ClassVar[str] = "token"

    bins: int = 256
    """Bins per action value, uniform over the normalized range [-1, 1]."""
    temperature: float = 1.0
    """Sampling temperature; log-probabilities are under the tempered distribution."""

    def __post_init__(self) -> None:
        _check(self, bins=">= 2", temperature="> 0")


@dataclass
class DCTHeadConfig:
    """The DCT head (`head = 'dct'`): tokens of the chunk's first DCT coefficients, smooth by
    construction; its bin ranges are fitted by SFT (`CompactVLA.fit_action_head`)."""

    NAME: ClassVar[str] = "dct"

    coefficients: int = 4
    """Coefficients M kept per action dimension (1..chunk_size); each step of the chunk is a
    sum of the M lowest-frequency cosines. M = chunk_size can express any chunk."""
    gripper_steps: bool = True
    """The gripper (last action dimension) stays one token per step, so an open/close switch
    is not smeared over the chunk by the low-frequency basis; False = the gripper is a smooth
    dimension like the others."""
    bins: int = 256
    """Bins per DCT coefficient (and per gripper step)."""
    temperature: float = 1.0
    """Sampling temperature; log-probabilities are under the tempered distribution."""

    def __post_init__(self) -> None:
        _check(self, coefficients=">= 1", bins=">= 2", temperature="> 0")


@dataclass
class FlowHeadConfig:
    """The flow head (`head = 'flow'`): flow matching, acting through the Flow-SDE."""

    NAME: ClassVar[str] = "flow"

    steps: int = 10
    """Euler steps N of the ODE (greedy) or the SDE (sampled)."""
    sde_sigma: float = 0.5
    """Diffusion coefficient g of the sampling SDE (normalized action units)."""
    layers: int = 2
    """Blocks of the action expert."""
    context: bool = False
    """Every expert block also cross-attends to the backbone's hidden states at all tokens
    (vision, language, proprio, action queries), as pi0's action expert attends to the VLM.
    False = the expert sees only the action-query states, added to its inputs."""

    def __post_init__(self) -> None:
        _check(self, steps=">= 1", sde_sigma="> 0", layers=">= 1")


@dataclass
class GaussianHeadConfig:
    """The Gaussian head (`head = 'gaussian'`): a diagonal Gaussian over the chunk."""

    NAME: ClassVar[str] = "gaussian"

    state_std: bool = False
    """Log-std from the hidden state (True) or a learned state-independent vector."""
    init_log_std: float = -1.0
    """Initial log-std (normalized action units) of every action element."""

    def __post_init__(self) -> None:
        _check(self)


@dataclass
class AuxTokenConfig:
    """An auxiliary token head beside a flow, Gaussian or DCT head (SFT co-training)."""

    NAME: ClassVar[str] = "aux_token"

    weight: float = 0.0
    """Weight of the auxiliary token head's cross-entropy (on the same action-query states)
    added to the SFT loss, so the backbone also learns from discrete action targets
    (co-training, as pi0.5 does with discrete action tokens). The head trains with the policy
    and is saved with it; it never acts. 0 = no auxiliary head."""
    bins: int = 256
    """Bins per action value of the auxiliary token head."""
    insulate_backbone: bool = False
    """The action head's SFT loss does not reach the backbone (knowledge insulation, as pi0.5
    trains its flow expert): the backbone learns from the auxiliary token loss alone, the
    action head from its loss on detached backbone states. SFT only; RL updates still train
    the backbone through the head. Needs weight > 0."""

    def __post_init__(self) -> None:
        _check(self, weight=">= 0", bins=">= 2")
        if self.insulate_backbone and not self.weight > 0:
            raise UserError("aux_token.insulate_backbone stops the head's gradient at the "
                            "backbone, so it needs aux_token.weight > 0 to train the backbone "
                            "at all")
        if self.weight == 0 and self.bins != AuxTokenConfig.bins:
            raise UserError(f"aux_token.bins = {self.bins} sets the auxiliary token head, which "
                            "is off (aux_token.weight = 0)")

    @property
    def enabled(self) -> bool:
        return self.weight > 0


HEAD_CONFIGS: dict[str, type] = {c.NAME: c for c in (TokenHeadConfig, DCTHeadConfig,
                                                     FlowHeadConfig, GaussianHeadConfig)}
"""Head name (`VLAConfig.head`) -> its config class; `VLAConfig` holds one of each under
that name."""

FLAT_FIELDS: dict[str, dict[str, str]] = {
    "token": {"bins": "n_bins", "temperature": "temperature"},
    "dct": {"coefficients": "dct_coefficients", "gripper_steps": "dct_gripper_steps",
            "bins": "n_bins", "temperature": "temperature"},
    "flow": {"steps": "flow_steps", "sde_sigma": "flow_sde_sigma", "layers": "flow_layers",
             "context": "flow_context"},
    "gaussian": {"state_std": "gaussian_state_std", "init_log_std": "gaussian_init_log_std"},
    "aux_token": {"weight": "aux_token_weight", "bins": "n_bins",
                  "insulate_backbone": "insulate_backbone"},
}
"""Per head config, its field -> the flat VLAConfig field that held it before the split
(`n_bins` served the token, DCT and auxiliary token heads alike)."""


def nest_flat_fields(d: dict[str, Any]) -> dict[str, Any]:
    """A policy config dict in the flat layout (every head's settings at the top level, as
    checkpoints written before the split hold them) -> the nested one. Settings of heads the
    policy does not have (which the old code held but never read) are dropped; those of its
    head, and of the auxiliary token head when its weight is > 0, go to their configs. A dict
    without flat fields comes back unchanged (a copy)."""
    d = dict(d)
    flat_keys = {old for fields in FLAT_FIELDS.values() for old in fields.values()}
    flat = {k: d.pop(k) for k in list(d) if k in flat_keys}
    if not flat:
        return d
    head = d.get("head", "flow")
    for name, fields in FLAT_FIELDS.items():
        used = name == head or (name == "aux_token" and flat.get("aux_token_weight", 0) > 0)
        values = {new: flat[old] for new, old in fields.items() if old in flat}
        if used and values:
            if name in d:
                raise UserError(f"policy config holds both the flat fields "
                                f"{sorted(fields[k] for k in values)} and {name!r}: write "
                                f"{name} = {{{', '.join(values)}}} only")
            d[name] = values
    return d


SAMPLING_OVERRIDES: dict[str, dict[str, str]] = {
    "temperature": {"token": "temperature", "dct": "temperature"},
    "flow_steps": {"flow": "steps"},
    "flow_sde_sigma": {"flow": "sde_sigma"},
}
"""The flat override names `load_policy` takes from the commands (train, eval) -> per head,
the field of its config they set. They change how a head samples, never the weights."""
