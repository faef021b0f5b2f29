"""`smoothvla collect --resume`: a run stopped after k episodes, then resumed, writes the same
file as an uninterrupted run; mismatched or unasked-for reuse of an output is refused."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from smoothvla.commands import collect
from smoothvla.data.hdf5 import demo_names, file_attrs, iter_demos
from smoothvla.errors import UserError
from smoothvla.experts import collect as demos  # the library `collect.run` calls

SUITE = "tabletop-object"
REAL_TO_DEMO = demos._to_demo


def _two_tasks():
    from smoothvla.envs import list_tasks

    return tuple(s.name for s in list_tasks(SUITE)[:2])


def _config(out, **overrides):
    base = dict(out=out, suite=SUITE, episodes_per_task=2, tasks=_two_tasks(), workers=1,
                image_size=16, seed=5)
    return collect.Config(**{**base, **overrides})


class Killed(Exception):
    pass


def _stop_after(monkeypatch, k):
    """Make the run die (like a kill) while converting its episode k+1; returns the list of
    the episodes converted in this process."""
    calls = []

    def to_demo(result, cfg):
        if len(calls) == k:
            raise Killed()
        calls.append(result["job"])
        return REAL_TO_DEMO(result, cfg)

    monkeypatch.setattr(demos, "_to_demo", to_demo)
    return calls


def _assert_same_file(a, b):
    assert demo_names(a) == demo_names(b)
    assert file_attrs(a) == file_attrs(b)
    for (name_a, da), (name_b, db) in zip(iter_demos(a), iter_demos(b), strict=True):
        assert name_a == name_b
        np.testing.assert_array_equal(da.actions, db.actions)
        np.testing.assert_array_equal(da.rewards, db.rewards)
        np.testing.assert_array_equal(da.dones, db.dones)
        assert da.actions.dtype == db.actions.dtype
        assert sorted(da.obs) == sorted(db.obs)
        for key in da.obs:
            assert da.obs[key].dtype == db.obs[key].dtype
            np.testing.assert_array_equal(da.obs[key], db.obs[key])
        assert sorted(da.attrs) == sorted(db.attrs)
        for key in da.attrs:
            assert type(da.attrs[key]) is type(db.attrs[key]), key
            np.testing.assert_equal(da.attrs[key], db.attrs[key])


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    whole = tmp_path / "whole" / "demos.hdf5"
    assert collect.run(_config(whole)) == 0
    assert len(demo_names(whole)) == 4  # 2 tasks x 2 episodes, every expert succeeds

    out = tmp_path / "resumed" / "demos.hdf5"
    parts = demos.parts_folder(out)
    first = _stop_after(monkeypatch, 2)
    with pytest.raises(Killed):
        collect.run(_config(out))
    assert not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["000000.hdf5", "000001.hdf5", "config.json"]

    with pytest.raises(UserError, match="--resume"):  # not without --resume
        collect.run(_config(out))
    second = _stop_after(monkeypatch, 100)
    assert collect.run(_config(out, resume=True, workers=2)) == 0
    every_job = demos.make_jobs(_config(out), demos.resolve_tasks(_config(out)))
    assert first + second == every_job  # each episode ran once: two before the kill, two after
    _assert_same_file(whole, out)
    assert not parts.exists()  # removed once the file is in place
    assert sorted(p.name for p in out.parent.iterdir()) == ["demos.hdf5"]


def test_resume_refuses_other_settings_and_finished_outputs(tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"
    fast = dict(cameras=(), tasks=_two_tasks()[:1])
    _stop_after(monkeypatch, 1)
    with pytest.raises(Killed):
        collect.run(_config(out, **fast))
    parts = demos.parts_folder(out)
    assert (parts / "000000.hdf5").exists()
    with pytest.raises(UserError, match=r"exists.*--resume"):
        collect.run(_config(out, **fast))
    changes = dict(episodes_per_task=3, image_size=32, seed=6, cameras=("agentview",),
                   tasks=_two_tasks()[1:], suite="tabletop-spatial", idle_filter=False,
                   init_offset=1)
    for field, value in changes.items():
        flag = "--" + field.replace("_", "-")
        cfg = _config(out, **{**fast, field: value, "resume": True})
        if field == "suite":
            cfg.tasks = ()
        with pytest.raises(UserError, match=flag):
            collect.run(cfg)
    assert sorted(p.name for p in parts.iterdir()) == ["000000.hdf5", "config.json"]

    _stop_after(monkeypatch, 100)
    assert collect.run(_config(out, resume=True, **fast)) == 0
    assert len(demo_names(out)) == 2 and not parts.exists()
    with pytest.raises(UserError, match=r"exists.*--resume"):
        collect.run(_config(out, **fast))
    with pytest.raises(UserError, match="complete"):
        collect.run(_config(out, resume=True, **fast))


def test_init_offset_shifts_every_episodes_init_state(tmp_path):
    """Past the fixed init states only where the suite samples layouts (LIBERO); refused
    before any work elsewhere."""
    from dataclasses import replace

    cfg = _config(tmp_path / "d.hdf5", episodes_per_task=52, init_offset=50)
    tabletop = demos.resolve_tasks(cfg)
    sampling = [replace(spec, samples_init_states=True) for spec in tabletop]
    jobs = demos.make_jobs(cfg, sampling)
    assert [j.init_id for j in jobs[:52]] == list(range(50, 100)) + [50, 51]
    assert [j.seed for j in jobs[:3]] == [5, 6, 7]
    with pytest.raises(UserError, match="init states 0-49 only"):
        collect.run(cfg)
    assert not demos.parts_folder(tmp_path / "d.hdf5").exists()
    cfg = _config(tmp_path / "d.hdf5", episodes_per_task=2, init_offset=48)  # 48, 49: fine
    assert [j.init_id for j in demos.make_jobs(cfg, tabletop)] == [48, 49, 48, 49]
    with pytest.raises(UserError, match="init_offset"):
        collect.run(_config(tmp_path / "e.hdf5", init_offset=-1))


def test_resume_without_parts_starts_a_new_collection(tmp_path, capsys):
    out = tmp_path / "demos.hdf5"
    assert collect.run(_config(out, resume=True, cameras=(), episodes_per_task=1,
                               tasks=_two_tasks()[:1])) == 0
    assert "starting a new collection" in capsys.readouterr().err
    assert len(demo_names(out)) == 1


@pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL of a subprocess, Linux paths")
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path):
    task = _two_tasks()[0]
    settings = dict(suite=SUITE, episodes_per_task=3, tasks=(task,), workers=1, cameras=(),
                    seed=2)
    out = tmp_path / "killed" / "demos.hdf5"
    parts = demos.parts_folder(out)
    here = Path(__file__).parent
    script = textwrap.dedent(f"""
        import collect_jobs
        from smoothvla.commands import collect
        from smoothvla.experts import collect as demos
        demos.JOB_RUNNER = collect_jobs.hang_from_episode_2
        collect.run(collect.Config(out={str(out)!r}, **{settings!r}))
    """)
    env = {**os.environ, "PYTHONPATH": f"{here.parents[1] / 'src'}:{here}",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list(parts.glob("*.hdf5"))) < 2:
            assert proc.poll() is None, "collect ended before it was killed"
            time.sleep(0.2)
        assert sorted(p.name for p in parts.glob("*.hdf5")) == ["000000.hdf5", "000001.hdf5"]
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # its workers die with it (PR_SET_PDEATHSIG)
        proc.wait(timeout=10)
    assert not out.exists()

    assert collect.run(collect.Config(out=out, resume=True, **settings)) == 0
    whole = tmp_path / "whole" / "demos.hdf5"
    assert collect.run(collect.Config(out=whole, **settings)) == 0
    _assert_same_file(whole, out)
    assert len(demo_names(out)) == 3 and not parts.exists()
