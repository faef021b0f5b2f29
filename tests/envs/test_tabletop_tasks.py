"""The tabletop registry, task definitions, layouts, and every task's reset/step."""

from __future__ import annotations

import numpy as np
import pytest

from smoothvla.envs import get_task, list_tasks, make
from smoothvla.envs.tabletop.objects import GROCERIES
from smoothvla.envs.tabletop.tasks import NUM_INIT_STATES, TASKS, sample_layout

SUITES = ("tabletop-spatial", "tabletop-object", "tabletop-goal", "tabletop-long")
ALL_IDS = [spec.task_id for suite in SUITES for spec in list_tasks(suite)]


def test_four_suites_of_ten_versioned_tasks():
    for suite in SUITES:
        specs = list_tasks(suite)
        assert len(specs) == 10
        assert len({s.instruction for s in specs}) == 10
        for spec in specs:
            assert spec.task_id.startswith(f"{suite}/") and spec.task_id.endswith("-v1")
            assert spec.num_init_states >= 50
    limits = {suite: list_tasks(suite)[0].max_steps for suite in SUITES}
    assert limits == {"tabletop-spatial": 220, "tabletop-object": 280, "tabletop-goal": 300,
                      "tabletop-long": 520}


def test_object_suite_uses_ten_distinct_graspable_objects():
    targets = {spec.name for spec in list_tasks("tabletop-object")}
    assert len(targets) == 10
    picked = {TASKS[s.task_id].stages[0]["object"] for s in list_tasks("tabletop-object")}
    assert len(picked) == 10 and picked <= set(GROCERIES)
    shapes = {(GROCERIES[n].shape, GROCERIES[n].size, GROCERIES[n].rgba) for n in picked}
    assert len(shapes) == 10
    assert all(GROCERIES[n].grasp_width < 0.075 for n in picked)  # Panda opens 0.08 m


def test_long_tasks_have_two_stages():
    assert all(len(TASKS[s.task_id].stages) == 2 for s in list_tasks("tabletop-long"))


def test_unknown_ids_raise():
    with pytest.raises(ValueError, match="unknown task id"):
        get_task("tabletop-object/pick-unicorn-place-basket-v1")
    with pytest.raises(ValueError, match="unknown suite"):
        make("tabletop-kitchen/anything-v1")
    with pytest.raises(ValueError, match="unknown camera"):
        make(ALL_IDS[0], cameras=("topdown",))
    with pytest.raises(ValueError, match="unknown option"):
        make(ALL_IDS[0], camera="agentview")


def test_layouts_are_deterministic_and_cover_fifty_inits():
    task = TASKS["tabletop-spatial/pick-bowl-left-of-plate-place-plate-v1"]
    first = [sample_layout(task, i) for i in range(NUM_INIT_STATES)]
    assert first == [sample_layout(task, i) for i in range(NUM_INIT_STATES)]
    assert len({(lay["bowl_1"].x, lay["bowl_1"].y) for lay in first}) == NUM_INIT_STATES
    # The relation of the instruction holds: bowl_1 is left (+y) of the plate, bowl_2 not.
    assert all(lay["bowl_1"].y > lay["plate"].y + 0.1 > lay["bowl_2"].y + 0.1 for lay in first)
    with pytest.raises(ValueError, match="init_id"):
        sample_layout(task, NUM_INIT_STATES)


@pytest.mark.parametrize("task_id", ALL_IDS)
def test_every_task_resets_and_steps_without_nan(task_id):
    env = make(task_id, cameras=())
    obs, info = env.reset(seed=0, init_id=task_id.__len__() % NUM_INIT_STATES)
    assert not info["success"]
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs, _, _, _, info = env.step(rng.uniform(-1, 1, 7))
        assert obs["proprio"].shape == (8,) and obs["proprio"].dtype == np.float32
        assert np.all(np.isfinite(obs["proprio"]))
        assert np.all(np.isfinite(env.data.qpos))
    for key in ("ee_pos", "ee_quat", "joint_pos", "gripper", "is_grasping", "success",
                "control_dt"):
        assert key in info
    assert info["joint_pos"].shape == (7,) and info["control_dt"] == 0.05
    assert obs["instruction"] == env.task.instruction
    env.close()
