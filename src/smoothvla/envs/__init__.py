"""Environments: the TaskEnv interface, the suite registry, and the suites themselves."""

from smoothvla.envs.base import (
    ACTION_DIM,
    Observation,
    Suite,
    TaskEnv,
    TaskSpec,
    check_action,
    get_task,
    list_suites,
    list_tasks,
    make,
    register_suite,
)

__all__ = [
    "ACTION_DIM",
    "Observation",
    "Suite",
    "TaskEnv",
    "TaskSpec",
    "check_action",
    "get_task",
    "list_suites",
    "list_tasks",
    "make",
    "register_suite",
]
