"""A stand-in for torchvision, for the tests only.

LeRobot imports torchvision at module level in a few modules that `lerobot.policies.*` pulls
in (dataset utilities, image transforms, video decoding, a HIL processor), though SmolVLA
never calls them. PyPI's torchvision does not load beside the CPU build of torch that the
test environment installs, so the tests put this module in `sys.modules` before LeRobot is
imported. It serves only the names those imports bind; calling anything raises. A user's
machine has a real torchvision and never sees this module.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

from torch import nn

NAME = "torchvision"


def _unavailable(*_args, **_kwargs):
    raise RuntimeError("torchvision is a test stand-in here (tests/lerobot/torchvision_standin.py)")


class Transform(nn.Module):
    """torchvision.transforms.v2.Transform: LeRobot subclasses it at import time."""

    def forward(self, *args, **kwargs):
        _unavailable()


def _any_name(attr: str):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return _unavailable


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__getattr__ = _any_name  # any other public name: a function that raises
    module.__dict__.update(attrs)
    return module


def install() -> bool:
    """Put the stand-in in `sys.modules` unless a torchvision is importable; returns whether
    it did."""
    if NAME in sys.modules:
        return False
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # absent, or a build that does not load beside this torch
        sys.modules.pop(NAME, None)
    functional = _module(f"{NAME}.transforms.functional")
    v2_functional = _module(f"{NAME}.transforms.v2.functional")
    v2 = _module(f"{NAME}.transforms.v2", Transform=Transform, functional=v2_functional)
    transforms = _module(f"{NAME}.transforms", v2=v2, functional=functional)
    io = _module(f"{NAME}.io")
    root = _module(NAME, transforms=transforms, io=io, __version__="0.0+standin")
    for module in (root, transforms, functional, v2, v2_functional, io):
        sys.modules[module.__name__] = module
    return True
