"""Where a policy runs: device names ('auto', 'cpu', 'cuda', 'cuda:N') and precision.

`CompactVLA` moves its inputs to its parameters' device and returns chunks on the CPU
(`policies/vla.py`); these helpers only pick the device and set the precision, so the
commands (`sft`, `train`, `eval`) share one meaning of `--device` and `--precision`.
Device and precision are not part of the `Policy` contract: any policy moves with
`nn.Module.to`; bf16 is the compact VLA's (`CompactVLA.set_precision`).
"""

from __future__ import annotations

import torch

from smoothvla.errors import UserError
from smoothvla.policies.base import Policy


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; 'cpu', 'cuda', 'cuda:N' as given, with a
    clear error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r} ('auto', 'cpu', 'cuda', 'cuda:N'): {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA GPU "
                        f"(torch {torch.__version__}); use 'cpu' or 'auto'")
    return device


def place(policy: Policy, device: str = "auto", precision: str = "fp32") -> Policy:
    """Move a policy to `device` (see `resolve_device`) and set its precision; bf16 on a
    device without CUDA falls back to fp32 only when the device was 'auto'. A policy other
    than the compact VLA runs in fp32 only."""
    from smoothvla.policies.vla import CompactVLA

    policy.to(resolve_device(device))
    if precision != "fp32" and policy.device.type != "cuda" and device == "auto":
        precision = "fp32"
    if isinstance(policy, CompactVLA):
        return policy.set_precision(precision)
    if precision != "fp32":
        raise UserError(f"precision {precision!r} is the compact VLA's option; "
                        f"{type(policy).__name__} runs in fp32")
    return policy
