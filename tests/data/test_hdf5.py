"""LIBERO-layout HDF5: round trip, atomic writes, clear errors."""

import h5py
import numpy as np
import pytest

from smoothvla.data import Demo, DemoWriter, demo_names, file_attrs, iter_demos, read_demo


def make_demo(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return Demo(
        actions=rng.uniform(-1, 1, (n, 7)),
        obs={
            "agentview_rgb": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
            "ee_pos": rng.normal(size=(n, 3)),
            "joint_states": rng.normal(size=(n, 7)),
        },
        attrs={"instruction": "put the bowl on the plate", "init_id": 3},
    )


def test_round_trip(tmp_path):
    path = tmp_path / "demos.hdf5"
    demos = [make_demo(12, 0), make_demo(9, 1)]
    with DemoWriter(path, env_args={"control_freq": 20}, problem_info={"language_instruction": "x"}) as w:
        for d in demos:
            w.add(d)
    assert demo_names(path) == ["demo_0", "demo_1"]
    attrs = file_attrs(path)
    assert attrs["num_demos"] == 2 and attrs["total"] == 21
    assert attrs["env_args"] == {"control_freq": 20}
    for (name, got), want in zip(iter_demos(path), demos):
        np.testing.assert_array_equal(got.actions, want.actions)
        for k in want.obs:
            np.testing.assert_array_equal(got.obs[k], want.obs[k])
        assert got.attrs["instruction"] == "put the bowl on the plate"
        assert got.attrs["num_samples"] == len(want.actions)
        assert got.dones[-1] == 1 and got.dones[:-1].sum() == 0
    only_pos = read_demo(path, "demo_1", obs_keys=("ee_pos",))
    assert set(only_pos.obs) == {"ee_pos"}


def test_crash_leaves_no_file(tmp_path):
    path = tmp_path / "demos.hdf5"
    with pytest.raises(RuntimeError):
        with DemoWriter(path) as w:
            w.add(make_demo())
            raise RuntimeError("worker died")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_demo_names_sorted_numerically(tmp_path):
    path = tmp_path / "d.hdf5"
    with DemoWriter(path) as w:
        for i in range(12):
            w.add(make_demo(5, i))
    assert demo_names(path)[:3] == ["demo_0", "demo_1", "demo_2"]
    assert demo_names(path)[-1] == "demo_11"


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        demo_names(tmp_path / "missing.hdf5")
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(ValueError, match="corrupt.hdf5: not a readable HDF5"):
        demo_names(corrupt)
    empty = tmp_path / "empty.hdf5"
    h5py.File(empty, "w").close()
    with pytest.raises(KeyError, match="no 'data' group"):
        demo_names(empty)
    path = tmp_path / "d.hdf5"
    with DemoWriter(path) as w:
        w.add(make_demo())
    with pytest.raises(KeyError, match="has no 'eye_in_hand_rgb'"):
        read_demo(path, "demo_0", obs_keys=("eye_in_hand_rgb",))
    with pytest.raises(ValueError, match="obs/ee_pos has 3 steps"):
        Demo(actions=np.zeros((4, 7)), obs={"ee_pos": np.zeros((3, 3))})
