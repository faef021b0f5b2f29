"""Execution schemes: which actions of the predicted chunks run, worked out by hand."""

import numpy as np
import pytest

from smoothvla.errors import UserError
from smoothvla.rollout.execution import ActionPlan, ExecutionConfig


def chunk(start: float, k: int = 4) -> np.ndarray:
    """A (k, 1) chunk of actions start, start + 1, ..."""
    return (start + np.arange(k, dtype=float))[:, None]


def test_chunk_and_receding_run_the_newest_plan():
    plan = ActionPlan(ExecutionConfig(), 4)
    assert plan.steps == 4
    plan.add(0, chunk(0))
    assert plan.actions(0, 4)[:, 0].tolist() == [0, 1, 2, 3]
    plan = ActionPlan(ExecutionConfig("receding", steps=2), 4)
    plan.add(0, chunk(0))
    plan.add(2, chunk(10))
    assert plan.actions(2, 2)[:, 0].tolist() == [10, 11]


def test_blend_fades_the_old_plan_into_the_new_chunk():
    # k = 4, 2 steps per call, overlap 2: new weights 1/3 and 2/3
    plan = ActionPlan(ExecutionConfig("blend", steps=2), 4)
    plan.add(0, chunk(0))
    assert plan.actions(0, 2)[:, 0].tolist() == [0, 1]  # nothing to blend with yet
    plan.add(2, chunk(10))  # the old plan has 2, 3 for steps 2, 3
    got = plan.actions(2, 2)[:, 0]
    np.testing.assert_allclose(got, [2 * 2 / 3 + 10 / 3, 3 / 3 + 11 * 2 / 3])


def test_ensemble_weights_the_oldest_prediction_most():
    plan = ActionPlan(ExecutionConfig("ensemble", ensemble_decay=np.log(2)), 3)
    for t, start in enumerate([0.0, 10.0, 20.0]):
        plan.add(t, chunk(start, 3))
    # step 2 is predicted by chunk 0 (2), chunk 1 (11), chunk 2 (20); weights 1, 1/2, 1/4
    np.testing.assert_allclose(plan.actions(2, 1)[0, 0], (2 + 11 / 2 + 20 / 4) / 1.75)
    plan.add(3, chunk(30.0, 3))  # chunk 0 no longer covers step 3
    np.testing.assert_allclose(plan.actions(3, 1)[0, 0], (12 + 21 / 2 + 30 / 4) / 1.75)


def test_prefix_is_the_current_plan_for_the_next_steps():
    plan = ActionPlan(ExecutionConfig("prefix", steps=2, prefix_steps=2), 4)
    assert plan.prefix(0, 2) is None
    plan.add(0, chunk(0))
    assert plan.prefix(2, 2)[:, 0].tolist() == [2, 3]
    assert plan.prefix(3, 2) is None  # beyond the plan


@pytest.mark.parametrize("kwargs, k, match", [
    ({"scheme": "smooth"}, 4, "unknown execution scheme"),
    ({"scheme": "chunk", "steps": 2}, 4, "whole chunks"),
    ({"scheme": "receding", "steps": 5}, 4, "exceed"),
    ({"scheme": "blend", "steps": 4}, 4, "overlap"),
    ({"scheme": "blend", "steps": 2, "blend_steps": 3}, 4, "exceeds the overlap"),
    ({"scheme": "prefix", "steps": 3, "prefix_steps": 2}, 4, "prefix_steps"),
    ({"scheme": "ensemble", "ensemble_decay": float("nan")}, 4, "ensemble_decay"),
    ({"scheme": "rtc", "steps": 4}, 4, "rtc needs steps < chunk size"),
    ({"scheme": "rtc", "steps": 2, "rtc_delay": 3}, 4, "rtc_delay 3 exceeds"),
    ({"scheme": "rtc", "rtc_delay": -1}, 4, "rtc_delay must be >= 0"),
    ({"scheme": "rtc", "rtc_max_guidance_weight": 0.0}, 4, "rtc_max_guidance_weight > 0"),
    ({"scheme": "rtc", "rtc_schedule": "linear"}, 4, "unknown rtc_schedule"),
])
def test_bad_schemes_are_refused(kwargs, k, match):
    with pytest.raises(UserError, match=match):
        ExecutionConfig(**kwargs).steps_for(k)


def test_averaging_schemes_are_refused_for_rl():
    for scheme in ("chunk", "receding", "prefix"):
        ExecutionConfig(scheme).check_for_rl()
    for scheme in ("blend", "ensemble", "rtc"):
        with pytest.raises(UserError, match="evaluation only"):
            ExecutionConfig(scheme).check_for_rl()
    with pytest.raises(UserError, match="for RL use 'prefix'"):
        ExecutionConfig("rtc").check_for_rl()


def test_rtc_defaults_and_settings_name_lerobots_fields():
    cfg = ExecutionConfig.parse("rtc:3")
    assert cfg.steps_for(8) == 3 and ExecutionConfig("rtc").steps_for(8) == 4
    assert cfg.settings() == {"scheme": "rtc", "steps": 3, "rtc_delay": 0,
                              "rtc_max_guidance_weight": 10.0, "rtc_schedule": "LINEAR"}
    assert cfg.rtc_settings() == {"inference_delay": 0, "max_guidance_weight": 10.0,
                                  "prefix_attention_schedule": "LINEAR"}
    assert "rtc_delay" not in ExecutionConfig("prefix").settings()
