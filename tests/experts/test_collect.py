"""`smoothvla collect` on a tiny budget, through the real tabletop env."""

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from smoothvla.commands import collect
from smoothvla.experts import collect as demos  # the library `collect.run` calls
from smoothvla.data.hdf5 import demo_names, file_attrs, iter_demos

TASK_SUITE = "tabletop-object"


def _first_task():
    from smoothvla.envs import list_tasks

    return list_tasks(TASK_SUITE)[0]


def test_collect_writes_libero_layout(tmp_path):
    spec = _first_task()
    out = tmp_path / "demos.hdf5"
    cfg = collect.Config(out=out, suite=TASK_SUITE, episodes_per_task=2, tasks=(spec.name,),
                         workers=1, image_size=32, seed=3)
    assert collect.run(cfg) == 0
    names = demo_names(out)
    assert names == ["demo_0", "demo_1"]
    attrs = file_attrs(out)
    assert attrs["num_demos"] == 2 and attrs["env_args"]["env_name"] == TASK_SUITE
    for i, (_, demo) in enumerate(iter_demos(out)):
        t = len(demo.actions)
        assert demo.actions.shape == (t, 7) and np.all(np.abs(demo.actions) <= 1)
        shapes = {k: v.shape for k, v in demo.obs.items()}
        assert shapes == {
            "agentview_rgb": (t, 32, 32, 3), "eye_in_hand_rgb": (t, 32, 32, 3),
            "ee_pos": (t, 3), "ee_ori": (t, 3), "ee_states": (t, 6),
            "gripper_states": (t, 2), "joint_states": (t, 7),
        }
        assert demo.obs["agentview_rgb"].dtype == np.uint8
        assert demo.rewards.shape == (t,) and demo.dones.shape == (t,) and demo.dones[-1] == 1
        assert demo.attrs["task_id"] == spec.task_id
        assert demo.attrs["init_id"] == i and demo.attrs["seed"] == 3 + i
        # the unfiltered motion's jerk, the smooth reward's scale: a few m/s^3 for the expert
        assert 0.5 < demo.attrs["expert_mean_jerk"] < 20
        assert demo.attrs["instruction"] == spec.instruction
        assert bool(demo.attrs["success"])


def test_interrupted_collect_leaves_no_file(tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(demos, "_to_demo", boom)
    spec = _first_task()
    cfg = collect.Config(out=out, suite=TASK_SUITE, episodes_per_task=1, tasks=(spec.name,),
                         workers=1, cameras=(), seed=0)
    with pytest.raises(RuntimeError, match="interrupted"):
        collect.run(cfg)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()]


def test_worker_crash_is_reported_not_hung(tmp_path, monkeypatch, capsys):
    import expert_standin

    monkeypatch.setattr(demos, "JOB_RUNNER", expert_standin.crash_job)
    out = tmp_path / "demos.hdf5"
    cfg = collect.Config(out=out, suite=TASK_SUITE, episodes_per_task=1,
                         tasks=(_first_task().name,), workers=1, cameras=())
    assert collect.run(cfg) == 1
    assert "worker process died" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="episodes_per_task"):
        collect.run(collect.Config(out=tmp_path / "x.hdf5", episodes_per_task=0))
    with pytest.raises(ValueError, match="workers"):
        collect.run(collect.Config(out=tmp_path / "x.hdf5", workers=0))
    with pytest.raises(ValueError, match="unknown suite"):
        collect.run(collect.Config(out=tmp_path / "x.hdf5", suite="tabletop-nope"))
    with pytest.raises(ValueError, match="unknown task"):
        collect.run(collect.Config(out=tmp_path / "x.hdf5", suite=TASK_SUITE, tasks=("nope",)))
    assert not (tmp_path / "x.hdf5").exists()


def test_cli_reports_bad_config(capsys):
    from smoothvla.cli import main

    code = main(["collect", "--suite", "tabletop-nope", "--episodes-per-task", "1"])
    assert code == 1
    assert "unknown suite" in capsys.readouterr().err
    assert main(["collect", "--episodes-per-task", "0"]) == 1
    assert "episodes_per_task must be > 0" in capsys.readouterr().err
