import numpy as np
import pytest

from smoothvla.metrics import mean_jerk
from smoothvla.metrics.attribution import chunk_jerk, window_chunks


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
