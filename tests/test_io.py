"""check_writable_output: a bad output path is a UserError before any work starts."""

import os

import pytest

from smoothvla.errors import UserError
from smoothvla.io import check_writable_output


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
