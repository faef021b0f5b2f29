import numpy as np
import pytest

from smoothvla.metrics import mean_jerk
from smoothvla.metrics.attribution import (
    SPLIT_KEYS,
    chunk_jerk,
    classify_windows,
    gripper_events,
    jerk_sources,
    jerk_trace,
    window_chunks,
)


def test_windows_belong_to_the_chunk_of_their_last_action():
    # 7 actions in chunks [0,1,2] [3,4] [5,6]; windows t = 0..4 end at actions 2..6
    starts = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    assert window_chunks(7, starts).tolist() == [0, 1, 1, 2, 2]
    assert window_chunks(7, 3).tolist() == [0, 1, 1, 1, 2]


def test_chunk_jerk_by_hand():
    # x = t^3 / 6 * dt^3 ... use a path whose third difference is known: p_t = (t^3, 0, 0)
    dt = 0.5
    t = np.arange(6, dtype=float)
    p = np.stack([t**3, 0 * t, 0 * t], 1)
    # third difference of t^3 is 6 everywhere: ||j|| = 6 / dt^3 = 48 for the 3 windows
    sums, counts = chunk_jerk(p, dt, np.array([1, 0, 0, 1, 0], bool))
    # windows end at actions 2, 3, 4 -> chunks 0, 1, 1
    assert counts.tolist() == [1, 2]
    assert sums == pytest.approx([48.0, 96.0])
    assert sums.sum() / counts.sum() == pytest.approx(mean_jerk(p, dt))


def test_chunk_jerk_needs_a_first_chunk_start():
    with pytest.raises(ValueError, match="chunk_starts\\[0\\]"):
        chunk_jerk(np.zeros((6, 3)), 0.05, np.array([0, 1, 0, 0, 0], bool))


def path_with_third_differences(d):
    """(len(d) + 3, 3) path along x whose third differences are d (so ||j_t|| = |d_t| at dt=1)."""
    x = [0.0, 0.0, 0.0]
    for dt3 in d:
        x.append(dt3 + 3 * x[-1] - 3 * x[-2] + x[-3])
    return np.stack([np.array(x), np.zeros(len(x)), np.zeros(len(x))], 1)


P = path_with_third_differences([1.0, 2.0, 3.0, 4.0, 5.0])  # T = 8: 7 actions, 5 windows
STARTS = np.array([1, 0, 0, 1, 0, 0, 1], bool)  # chunks of 3 actions: [0,1,2] [3,4,5] [6]


def test_jerk_trace_places_each_window_at_its_midpoint():
    steps, norms = jerk_trace(P, 1.0)
    assert steps.tolist() == [1.5, 2.5, 3.5, 4.5, 5.5]
    assert norms == pytest.approx([1, 2, 3, 4, 5])


def test_gripper_events_by_hand():
    # closed = g > 0: [F, F, T, T, F] -> the command changes at actions 2 and 4; 0 is open
    assert gripper_events([-1, -1, 0.5, 0.2, -0.3]).tolist() == [2, 4]
    assert gripper_events([0.0, 1.0]).tolist() == [1]
    # held at states 1, 2: grasped during action 0, released during action 2
    assert gripper_events(grasping=[0, 1, 1, 0]).tolist() == [0, 2]
    assert gripper_events([-1, 1, 1], [0, 1, 1, 1]).tolist() == [0, 1]
    assert gripper_events().tolist() == []


def test_boundary_and_inside_windows_by_hand():
    # window t spans actions t..t+2; it crosses a boundary when action t+1 or t+2 starts a chunk:
    # t = 0 inside, 1 (start 3) boundary, 2 (start 3) boundary, 3 inside, 4 (start 6) boundary
    assert classify_windows(7, STARTS, []).tolist() == [1, 0, 0, 1, 0]
    s = jerk_sources(P, 1.0, STARTS)
    assert s["mean_jerk"] == pytest.approx(3.0)
    assert s["jerk_boundary"] == pytest.approx((2 + 3 + 5) / 3)
    assert s["jerk_boundary_share"] == pytest.approx(10 / 15)
    assert s["jerk_boundary_windows"] == pytest.approx(3 / 5)
    assert s["jerk_inside"] == pytest.approx((1 + 4) / 2)
    assert s["jerk_inside_share"] == pytest.approx(5 / 15)
    assert s["jerk_inside_windows"] == pytest.approx(2 / 5)
    # no gripper data: the event class is not measured, not zero
    assert all(np.isnan(s[k]) for k in ("jerk_event", "jerk_event_share", "jerk_event_windows"))
    assert set(s) == {"mean_jerk", *SPLIT_KEYS}
    assert jerk_sources(P, 1.0, 3) == s  # an int chunk size gives the same starts


def test_gripper_command_event_takes_precedence_over_a_boundary():
    close_at_6 = np.array([-1, -1, -1, -1, -1, -1, 1.0])
    # margin 0: only window 4 (actions 4..6) holds action 6; it was a boundary window
    s = jerk_sources(P, 1.0, STARTS, gripper_actions=close_at_6, margin=0)
    assert s["jerk_event"] == 5.0 and s["jerk_event_share"] == pytest.approx(5 / 15)
    assert s["jerk_event_windows"] == pytest.approx(1 / 5)
    assert s["jerk_boundary"] == pytest.approx(2.5)
    assert s["jerk_boundary_share"] == pytest.approx(5 / 15)
    assert s["jerk_inside"] == pytest.approx(2.5)
    # margin 2: windows t >= 6 - 2 - 2 = 2 are events
    s = jerk_sources(P, 1.0, STARTS, gripper_actions=close_at_6, margin=2)
    assert s["jerk_event"] == pytest.approx(4.0) and s["jerk_event_share"] == pytest.approx(12 / 15)
    assert s["jerk_boundary"] == 2.0 and s["jerk_boundary_share"] == pytest.approx(2 / 15)
    assert s["jerk_inside"] == 1.0 and s["jerk_inside_windows"] == pytest.approx(1 / 5)


def test_grasp_transition_event_and_empty_class():
    grasping = np.array([0, 0, 1, 1, 1, 1, 1, 1], bool)  # grasped during action 1
    s = jerk_sources(P, 1.0, STARTS, grasping=grasping, margin=0)
    # windows 0 (actions 0..2) and 1 (actions 1..3) hold action 1
    assert s["jerk_event"] == pytest.approx(1.5) and s["jerk_event_share"] == pytest.approx(3 / 15)
    assert s["jerk_boundary"] == pytest.approx(4.0)  # windows 2, 4
    assert s["jerk_inside"] == pytest.approx(4.0)  # window 3
    # one chunk, no events: no boundary window -> its mean is NaN, its shares 0
    s = jerk_sources(P, 1.0, 100, grasping=np.zeros(8, bool))
    assert np.isnan(s["jerk_boundary"]) and s["jerk_boundary_share"] == 0.0
    assert s["jerk_event_windows"] == 0.0 and s["jerk_inside_share"] == pytest.approx(1.0)


def test_jerk_sources_add_up_on_a_random_path():
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.normal(size=(60, 3)), axis=0)
    g = np.where(np.arange(59) < 30, -1.0, 1.0)
    s = jerk_sources(p, 0.05, 8, gripper_actions=g, grasping=np.arange(60) > 33)
    assert s["mean_jerk"] == pytest.approx(mean_jerk(p, 0.05))
    classes = ("boundary", "inside", "event")
    assert sum(s[f"jerk_{c}_share"] for c in classes) == pytest.approx(1.0)
    assert sum(s[f"jerk_{c}_windows"] for c in classes) == pytest.approx(1.0)
    for c in classes:
        expected = s[f"jerk_{c}_windows"] * s[f"jerk_{c}"] / s["mean_jerk"]
        assert s[f"jerk_{c}_share"] == pytest.approx(expected)
    # events at actions 30 (command) and 33 (grasp between states 33 and 34), margin 2:
    # windows t with t - 2 <= s <= t + 4, i.e. 26..32 and 29..35, 10 of 57
    assert s["jerk_event_windows"] == pytest.approx(10 / 57)


def test_jerk_sources_idle_path_and_bad_input():
    s = jerk_sources(np.zeros((10, 3)), 0.05, 4, gripper_actions=np.zeros(9))
    assert s["mean_jerk"] == 0.0 and np.isnan(s["jerk_boundary_share"])
    with pytest.raises(ValueError, match="gripper_actions must have shape \\(7,\\)"):
        jerk_sources(P, 1.0, 3, gripper_actions=np.zeros(8))
    with pytest.raises(ValueError, match="grasping must have shape \\(8,\\)"):
        jerk_sources(P, 1.0, 3, grasping=np.zeros(7))
    with pytest.raises(ValueError, match="margin"):
        jerk_sources(P, 1.0, 3, margin=-1)
    with pytest.raises(ValueError, match="chunk_starts\\[0\\]"):
        jerk_sources(P, 1.0, ~STARTS)
    with pytest.raises(ValueError, match="chunk_starts must have shape"):
        jerk_sources(P, 1.0, STARTS[:-1])
