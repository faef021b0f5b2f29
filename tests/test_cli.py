"""`smoothvla` entry point, `smoothvla jerk` on LIBERO-layout and npz files, `smoothvla demo`."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from smoothvla.cli import VERBS, main
from smoothvla.data import Demo, DemoWriter
from smoothvla.metrics import jerk_sources, mean_jerk
from smoothvla.metrics.synthetic import jittery, pick_place_path


@pytest.fixture
def libero_file(tmp_path):
    """Two episodes in LIBERO's layout: a smooth one and a jittery one."""
    smooth = pick_place_path(0.05)
    noisy = jittery(smooth, 1e-3, np.random.default_rng(0))
    path = tmp_path / "libero_demo.hdf5"
    with DemoWriter(path) as w:
        for pos in (smooth, noisy):
            n = len(pos)
            w.add(Demo(actions=np.zeros((n, 7)),
                       obs={"ee_pos": pos, "joint_states": np.zeros((n, 7)),
                            "gripper_states": np.zeros((n, 2))}))
    return path, smooth, noisy


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out
    assert main(["frobnicate"]) == 2


def test_every_available_verb_has_help():
    for verb in VERBS:
        proc = subprocess.run([sys.executable, "-m", "smoothvla.cli", verb, "--help"],
                              capture_output=True, text=True, timeout=120)
        if "not available in this version yet" in proc.stderr:
            continue
        assert proc.returncode == 0, (verb, proc.stderr)
        assert "usage: smoothvla " + verb in proc.stdout


def test_jerk_on_libero_hdf5_json(libero_file, capsys):
    path, smooth, noisy = libero_file
    assert main(["jerk", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    eps = result["episodes"]
    assert [e["episode"] for e in eps] == ["demo_0", "demo_1"]
    assert eps[0]["mean_jerk"] == pytest.approx(mean_jerk(smooth, 0.05))
    assert eps[1]["mean_jerk"] == pytest.approx(mean_jerk(noisy, 0.05))
    assert eps[1]["mean_jerk"] > 10 * eps[0]["mean_jerk"]
    assert result["summary"]["mean_jerk"]["count"] == 2


def test_jerk_table_and_control_rate(libero_file, capsys):
    path, smooth, _ = libero_file
    assert main(["jerk", str(path), "--control-hz", "10"]) == 0
    out = capsys.readouterr().out
    assert "mean jerk m/s^3" in out and "demo_1" in out and "at 10 Hz" in out
    assert f"{mean_jerk(smooth, 0.1):.3f}" in out


def test_jerk_on_robomimic_key_and_npz(tmp_path, capsys):
    path = tmp_path / "robomimic.hdf5"
    pos = pick_place_path(0.05)
    with h5py.File(path, "w") as f:
        f.create_dataset("data/demo_0/actions", data=np.zeros((len(pos), 7)))
        f.create_dataset("data/demo_0/obs/robot0_eef_pos", data=pos)
    batch = np.zeros((2, len(pos), 3))
    batch[0], batch[1, :50] = pos, pos[:50]
    npz = tmp_path / "batch.npz"
    np.savez(npz, ee_pos=batch, lengths=np.array([len(pos), 50]))
    assert main(["jerk", str(path), str(npz), "--json"]) == 0
    eps = json.loads(capsys.readouterr().out)["episodes"]
    assert len(eps) == 3
    assert eps[0]["mean_jerk"] == pytest.approx(eps[1]["mean_jerk"])
    assert eps[2]["steps"] == 49


def test_jerk_chunk_size_without_actions(tmp_path, capsys):
    # --chunk-size on a file without actions used to raise KeyError 'chunk_jump'
    pos = pick_place_path(0.05)
    npz = tmp_path / "good.npz"
    np.savez(npz, ee_pos=pos)
    assert main(["jerk", str(npz), "--chunk-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "No actions in the file(s): no chunk jump" in out
    assert "chunk jump" not in out.splitlines()[0]  # no column for it
    assert "boundary jerk share" in out and "gripper events are not measured" in out
    split = jerk_sources(pos, 0.05, 8)
    assert f"{split['jerk_boundary_share']:.3f}" in out
    assert main(["jerk", str(npz), "--chunk-size", "8", "--json"]) == 0
    ep = json.loads(capsys.readouterr().out)["episodes"][0]
    assert ep["jerk_boundary"] == pytest.approx(split["jerk_boundary"])
    assert ep["jerk_event"] is None or np.isnan(ep["jerk_event"])


def test_jerk_split_with_gripper_actions_in_libero_layout(tmp_path, capsys):
    pos = pick_place_path(0.05)
    actions = np.zeros((len(pos), 7))  # LIBERO layout: one action per observation
    actions[:, 6] = np.where(np.arange(len(pos)) < 64, -1.0, 1.0)  # closes at action 64
    path = tmp_path / "demo.hdf5"
    with DemoWriter(path) as w:
        w.add(Demo(actions=actions, obs={"ee_pos": pos}))
    no_actions = tmp_path / "no_actions.npz"
    np.savez(no_actions, ee_pos=pos)
    assert main(["jerk", str(path), str(no_actions), "--chunk-size", "8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ep = result["episodes"][0]
    split = jerk_sources(pos, 0.05, 8, gripper_actions=actions[:-1, 6])
    for k in ("jerk_event", "jerk_event_share", "jerk_boundary", "jerk_inside_windows"):
        assert ep[k] == pytest.approx(split[k])
    assert ep["jerk_event_windows"] == pytest.approx(7 / (len(pos) - 3))  # windows 60..66
    assert len(pos) == 145  # 145 actions: 18 chunk boundaries, at 8, 16, ..., 144
    assert ep["chunk_jump"] == pytest.approx(2.0 / 18)  # one jump of 2, at the boundary 64
    assert result["summary"]["chunk_jump"]["count"] == 1  # the npz has no actions: NaN there
    assert result["summary"]["jerk_event"]["count"] == 1


def test_jerk_clear_errors(tmp_path, capsys):
    missing_key = tmp_path / "nokey.hdf5"
    with h5py.File(missing_key, "w") as f:
        f.create_dataset("data/demo_0/actions", data=np.zeros((5, 7)))
        f.create_dataset("data/demo_0/obs/joint_states", data=np.zeros((5, 7)))
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"\x89HDF garbage")
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK garbage")
    nan_npz = tmp_path / "nan.npz"
    np.savez(nan_npz, ee_pos=np.full((10, 3), np.nan))
    cases = [
        (missing_key, ["nokey.hdf5", "ee_pos", "robot0_eef_pos"]),
        (corrupt, ["corrupt.hdf5", "not a readable HDF5"]),
        (bad_npz, ["bad.npz", "not a readable .npz"]),
        (nan_npz, ["nan.npz", "NaN"]),
        (tmp_path / "nothere.hdf5", ["nothere.hdf5", "no such file"]),
        (tmp_path / "x.csv", ["unsupported file type"]),
    ]
    (tmp_path / "x.csv").write_text("1,2,3")
    for path, needles in cases:
        assert main(["jerk", str(path)]) == 1
        err = capsys.readouterr().err
        for needle in needles:
            assert needle in err, (path, err)
    with pytest.raises(SystemExit) as exc:  # config errors are reported by the CLI parser
        main(["jerk", str(corrupt), "--control-hz", "0"])
    assert exc.value.code == 2
    assert "--control-hz must be a positive number" in capsys.readouterr().err


def test_eval_rejects_negative_flow_steps(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--checkpoints", str(tmp_path), "--flow-steps", "-1"])
    assert exc.value.code == 2
    assert "--flow-steps must be >= 0" in capsys.readouterr().err
