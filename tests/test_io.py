"""check_writable_output: a bad output path is a UserError before any work starts."""

import json
import os

import numpy as np
import pytest

from smoothvla.errors import UserError
from smoothvla.io import (
    atomic_write,
    atomic_write_text,
    check_writable_output,
    lock_directory,
    read_jsonl,
    truncate_jsonl,
)


def test_good_outputs_pass(tmp_path):
    check_writable_output(tmp_path / "new.hdf5", "file")
    check_writable_output(tmp_path / "a" / "b" / "new.hdf5", "file")  # parents are created later
    (tmp_path / "old.jsonl").write_text("{}\n")
    check_writable_output(tmp_path / "old.jsonl", "file")
    check_writable_output(tmp_path, "folder")
    check_writable_output(tmp_path / "run" / "sub", "folder")


def test_bad_outputs_are_user_errors(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a folder"):
        check_writable_output(tmp_path, "file")
    with pytest.raises(UserError, match="is a file; the output must be a folder"):
        check_writable_output(tmp_path / "f", "folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_writable_output(tmp_path / "f" / "deeper" / "out.hdf5", "file")
    # read-only (os.access stands in for chmod, which root ignores)
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(UserError, match="not writable"):
        check_writable_output(tmp_path / "new.hdf5", "file")
    with pytest.raises(UserError, match="not writable"):
        check_writable_output(tmp_path, "folder")


def test_remove_stale_temp_files(tmp_path):
    import subprocess
    import sys

    from smoothvla.io import remove_stale_temp_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_file = tmp_path / f".feat.npy.tmp-{dead.pid}"
    stale_dir = tmp_path / f".step_100.tmp-{dead.pid}"
    live = tmp_path / f".feat.npy.tmp-{os.getpid()}"
    other = tmp_path / f".demos.hdf5.tmp-{dead.pid}"
    keep = tmp_path / "feat.npy.tmp-1"  # not hidden: not ours
    for p in (stale_file, live, other, keep):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_text("x")
    assert remove_stale_temp_files(tmp_path, "demos.hdf5") == [other]
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([stale_file, stale_dir])
    assert live.exists() and keep.exists()
    assert remove_stale_temp_files(tmp_path / "missing") == []


# -- atomic writes, log truncation, directory locks --



@pytest.fixture
def umask():
    def set_to(mask):
        return os.umask(mask)

    old = os.umask(0o022)
    yield set_to
    os.umask(old)


def _mode(path):
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_text(tmp_path / "a.json", "{}")
    atomic_write(tmp_path / "b.bin", lambda f: f.write(b"x"))
    assert _mode(tmp_path / "a.json") == mode and _mode(tmp_path / "b.bin") == mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", fail)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_compact_vla_checkpoint_follows_the_umask(tmp_path, umask):
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
    from smoothvla.policies.head_configs import FlowHeadConfig

    umask(0o022)
    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (20, 7)), rng.normal(size=(20, 8)))
    cfg = VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32,
                    n_layers=1, n_heads=2, ff_dim=64, flow=FlowHeadConfig(layers=1, steps=2),
                    chunk_size=4)
    CompactVLA(cfg, norm).save(tmp_path / "policy")
    files = sorted((tmp_path / "policy").iterdir())
    assert [p.name for p in files] == ["config.json", "model.safetensors", "normalizer.json"]
    assert all(_mode(p) == 0o644 for p in files), [(p.name, oct(_mode(p))) for p in files]


def test_truncate_jsonl_keeps_rows_before_the_checkpoint(tmp_path):
    path = tmp_path / "log.jsonl"
    rows = [{"step": 1}, {"step": 2, "loss": 0.5}, {"step": 2, "eval_success": 1.0}, {"step": 3},
            {"note": "no key"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')  # cut short
    truncate_jsonl(path, "step", below=3)
    assert read_jsonl(path) == rows[:3]
    truncate_jsonl(tmp_path / "missing.jsonl", "step", below=3)
    assert (tmp_path / "missing.jsonl").read_text() == ""


def test_lock_directory_refuses_a_second_holder_until_the_first_lets_go(tmp_path, monkeypatch):
    import errno
    import fcntl

    with lock_directory(tmp_path / "run", "train run"):
        with pytest.raises(UserError, match="in use by another train run"):
            lock_directory(tmp_path / "run", "train run")
    lock_directory(tmp_path / "run", "train run").close()

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # e.g. NFS without a lock daemon
    lock_directory(tmp_path / "run", "train run").close()


def test_atomic_path_publishes_files_and_folders_or_leaves_the_old_ones(tmp_path):
    from smoothvla.io import atomic_path, temporary_path

    target = tmp_path / "sub" / "feat.npy"
    with atomic_path(target) as tmp:
        assert tmp == temporary_path(target) and tmp.name == f".feat.npy.tmp-{os.getpid()}"
        tmp.write_text("new")
        assert not target.exists()  # nothing at the final name before the block ends
    assert target.read_text() == "new" and not tmp.exists()

    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "old.json").write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(folder, folder=True) as tmp:
            (tmp / "model.safetensors").write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in folder.iterdir()] == ["old.json"] and not tmp.exists()
    with atomic_path(folder, folder=True) as tmp:
        (tmp / "model.safetensors").write_text("whole")
    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy", "sub"]  # no .old left
