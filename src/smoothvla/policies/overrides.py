"""What a run changes in a loaded checkpoint's config: `PolicyOverrides`, shared by
`smoothvla train`, `smoothvla eval` and the study (`--overrides.temperature 0.2`, or an
`[overrides]` table in a config file).

Every field is unset (None) by default, which keeps the checkpoint's own value; a value
replaces it when the policy is loaded (`load_policy(path, **overrides.as_dict())`). Whether
actions are sampled at all is not an override: RL always samples, `smoothvla eval` acts
greedily unless given `--sample`. `check_head` refuses an override that the checkpoint's head
would silently ignore.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from smoothvla.errors import UserError, check_fields
from smoothvla.policies.head_configs import SAMPLING_OVERRIDES

HEADS_OF: dict[str, tuple[str, ...]] = {name: tuple(heads) for name, heads
                                         in SAMPLING_OVERRIDES.items()}
"""Override -> the action heads it means something to."""

SAMPLING_ONLY = ("temperature", "flow_sde_sigma")
"""Overrides that change sampled actions only (greedy actions do not depend on them)."""


@dataclass
class PolicyOverrides:
    """Replacements for fields of a checkpoint's policy config; unset keeps the checkpoint's."""

    temperature: float | None = None
    """Token and DCT heads: sampling temperature (> 0; log-probs are under the tempered
    distribution). Unset: the checkpoint's (1.0 unless trained otherwise)."""
    flow_sde_sigma: float | None = None
    """Flow head: noise scale g of the sampling SDE (> 0). Unset: the checkpoint's."""
    flow_steps: int | None = None
    """Flow head: Euler steps of the ODE (greedy) or SDE (sampled), >= 1. More steps integrate
    the flow more exactly; the head's cost grows with N, though the vision encoder dominates
    (30 vs 10 steps: 1.10x the act time on CPU). Unset: the checkpoint's."""

    def __post_init__(self) -> None:
        check_fields(self, temperature="> 0", flow_sde_sigma="> 0", flow_steps=">= 1")

    def as_dict(self) -> dict[str, float | int]:
        """The fields that are set, as `load_policy` keyword arguments."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def check_head(self, head: str, checkpoint: str, *, sampled: bool = True) -> None:
        """UserError, naming the flag, for an override `checkpoint`'s `head` has no use for,
        or (with `sampled=False`) one that changes sampled actions only."""
        for name, value in self.as_dict().items():
            flag = "--overrides." + name.replace("_", "-")
            if head not in HEADS_OF[name]:
                raise UserError(f"{flag} {value} sets the {' or '.join(HEADS_OF[name])} head's "
                                f"config, but {checkpoint} has a {head} head; drop {flag}")
            if not sampled and name in SAMPLING_ONLY:
                raise UserError(f"{flag} {value} changes sampled actions only, and this run acts "
                                f"greedily; add --sample or drop {flag}")
