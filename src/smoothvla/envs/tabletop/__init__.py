"""The embedded MuJoCo tabletop suites: tabletop-spatial, -object, -goal, -long (10 tasks each).

    from smoothvla.envs import make, list_tasks
    env = make("tabletop-object/pick-ketchup-place-basket-v1", cameras=("agentview",),
               image_size=128, perturbation=PerturbationSpec("light", 0.5, seed=0))
    obs, info = env.reset(seed=0, init_id=3)

Options of `make`: `cameras` (subset of ("agentview", "eye_in_hand"), () for state only),
`image_size` (default 128), `perturbation` (see perturbations.py). See docs/envs.md.

Expert contract (kept stable for `smoothvla.experts`):
    env.task: TaskSpec; env.control_dt == 0.05; env.max_steps
    env.action_scale -> dict(pos=0.05, rot=0.5)  # m / rad per unit action per control step
    env.plan -> list[dict], each dict(skill=..., **args):
        dict(skill="pick_place", object=NAME, target=NAME, mode="on"|"in")
        dict(skill="push", object=NAME, goal=(x, y))
        dict(skill="open", articulation=NAME) / dict(skill="close", articulation=NAME)
    env.privileged_state() -> dict(ee_pos (3,), ee_quat (4, wxyz), gripper (float, m),
        joint_pos (7,), objects={NAME: dict(pos, quat, half_size, grasp_width, graspable)},
        articulations={NAME: dict(qpos, open_qpos, closed_qpos, handle_pos, axis)})
The ee position is the grasp point between the fingertips; neutral orientation points down.
"""

from __future__ import annotations

import os

# Software/GPU offscreen GL must be chosen before mujoco is imported anywhere.
os.environ.setdefault("MUJOCO_GL", "egl")
# Mesa's software rasterizer (llvmpipe) renders on the calling thread: for 128-px images its
# worker threads cost more in hand-offs than they save, and they oversubscribe the cores
# when one env runs per process (benchmarks/bench_envs.py: ~10% more steps per CPU-second).
os.environ.setdefault("LP_NUM_THREADS", "0")

from smoothvla.envs.base import Suite, TaskSpec, register_suite  # noqa: E402
from smoothvla.envs.tabletop.env import TabletopEnv  # noqa: E402
from smoothvla.envs.tabletop.perturbations import (  # noqa: E402
    PerturbationSpec,
    list_perturbations,
)
from smoothvla.envs.tabletop.tasks import MAX_STEPS, NUM_INIT_STATES, SUITES, TASKS  # noqa: E402


def _spec(task) -> TaskSpec:
    return TaskSpec(task_id=task.task_id, suite=task.suite, name=task.name,
                    instruction=task.instruction, max_steps=MAX_STEPS[task.suite],
                    num_init_states=NUM_INIT_STATES)


def _list_tasks(suite: str):
    return lambda: [_spec(t) for t in SUITES[suite]]


MAKE_OPTIONS = ("cameras", "image_size", "perturbation")


def make_env(spec: TaskSpec, **options) -> TabletopEnv:
    """Build the env of a registered tabletop task (what `smoothvla.envs.make` calls)."""
    if spec.task_id not in TASKS:
        raise ValueError(f"unknown tabletop task {spec.task_id!r}")
    unknown = sorted(set(options) - set(MAKE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {spec.task_id}; "
                         f"tabletop envs take {', '.join(MAKE_OPTIONS)}")
    return TabletopEnv(spec, TASKS[spec.task_id], **options)


for _name in SUITES:
    register_suite(Suite(_name, _list_tasks(_name), make_env))

__all__ = ["PerturbationSpec", "TabletopEnv", "list_perturbations", "make_env"]
