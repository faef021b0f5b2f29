import numpy as np
import pytest

from smoothvla.metrics import (
    METRIC_UNITS,
    action_jumps,
    chunk_boundary_jump,
    jerk_sources,
    path_metrics,
)
from smoothvla.metrics.attribution import SPLIT_KEYS
from smoothvla.metrics.synthetic import pick_place_path


def test_chunk_boundary_jumps_by_hand():
    actions = np.array([[0.0], [0.0], [1.0], [1.0], [3.0], [3.0]])
    boundary, within = action_jumps(actions, 2)  # chunks start at 0, 2, 4
    np.testing.assert_allclose(boundary, [1.0, 2.0])
    np.testing.assert_allclose(within, [0.0, 0.0, 0.0])
    assert chunk_boundary_jump(actions, [True, False, True, False, True, False]) == 1.5
    with pytest.raises(ValueError, match="chunk_starts"):
        chunk_boundary_jump(actions, [True, False])
    with pytest.raises(ValueError, match="NaN"):
        chunk_boundary_jump(np.array([[np.nan], [0.0]]), 1)


def test_path_metrics_keys_and_idle_path():
    p = pick_place_path(0.05)
    m = path_metrics(p, 0.05, actions=np.zeros((len(p) - 1, 7)), chunk_starts=8)
    assert set(m) == {"steps", "duration", "path_length", "mean_jerk", "ldlj", "sparc",
                      "idle_ratio", "chunk_jump", *SPLIT_KEYS}
    assert m["steps"] == len(p) - 1
    still = path_metrics(np.zeros((10, 3)), 0.05)
    assert np.isnan(still["ldlj"]) and still["mean_jerk"] == 0.0 and still["idle_ratio"] == 1.0


def test_path_metrics_jerk_split():
    p = pick_place_path(0.05)
    n = len(p) - 1
    gripper = np.where(np.arange(n) < n // 2, -1.0, 1.0)
    m = path_metrics(p, 0.05, chunk_starts=8, gripper_actions=gripper)
    assert m == {**path_metrics(p, 0.05), **{k: m[k] for k in SPLIT_KEYS}}  # old keys unchanged
    assert set(SPLIT_KEYS) <= set(METRIC_UNITS)
    assert METRIC_UNITS["jerk_boundary"] == "m/s^3" and METRIC_UNITS["jerk_event_share"] == ""
    split = jerk_sources(p, 0.05, 8, gripper_actions=gripper)
    assert {k: m[k] for k in SPLIT_KEYS} == {k: split[k] for k in SPLIT_KEYS}
    assert m["jerk_event_windows"] == pytest.approx(7 / (n - 2))  # one event, windows s-4..s+2
    assert "jerk_boundary" not in path_metrics(p, 0.05)
