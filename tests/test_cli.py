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
        main(["eval", "--checkpoints", str(tmp_path), "--overrides.flow-steps", "-1"])
    assert exc.value.code == 2
    assert "overrides: flow_steps must be >= 1" in capsys.readouterr().err


def test_only_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    """A UserError prints `smoothvla VERB: error: MESSAGE` and exits 1; any other exception is
    a bug and keeps its traceback."""
    import smoothvla.commands.jerk as jerk
    from smoothvla.errors import UserError

    npz = tmp_path / "p.npz"
    np.savez(npz, ee_pos=pick_place_path(0.05))

    def user_error(cfg):
        raise UserError("fix the flag")

    monkeypatch.setattr(jerk, "run", user_error)
    assert main(["jerk", str(npz)]) == 1
    assert capsys.readouterr().err == "smoothvla jerk: error: fix the flag\n"
    for bug in (KeyError("chunk_jump"), ValueError("internal"), FileNotFoundError("x")):
        def crash(cfg, bug=bug):
            raise bug
        monkeypatch.setattr(jerk, "run", crash)
        with pytest.raises(type(bug)):
            main(["jerk", str(npz)])


def test_jerk_chunk_jump_needs_actions(tmp_path, capsys):
    npz = tmp_path / "good.npz"
    pos = pick_place_path(0.05)
    np.savez(npz, ee_pos=pos, actions=np.zeros((len(pos) - 1, 7)))
    assert main(["jerk", str(npz), "--chunk-size", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"][0]["chunk_jump"] == 0.0


def test_user_input_errors_of_loaders_are_user_errors(tmp_path):
    """Missing or corrupt files, unknown tasks and suites: UserError (still ValueError)."""
    from smoothvla.data.hdf5 import read_demo
    from smoothvla.data.paths import load_episodes
    from smoothvla.envs import get_task, list_tasks, make
    from smoothvla.errors import UserError
    from smoothvla.eval.results import read_results
    from smoothvla.eval.runner import PolicyRef
    from smoothvla.policies.vla import load_policy
    from smoothvla.study import StudyConfig

    (tmp_path / "bad.toml").write_text("x = = 1")
    (tmp_path / "bad.jsonl").write_text("{}\nnot json\n{}\n")
    cases = [
        lambda: load_episodes(tmp_path / "none.hdf5"),
        lambda: read_demo(tmp_path / "none.hdf5", "demo_0"),
        lambda: list_tasks("tabletop-nope"),
        lambda: get_task("tabletop-object/nope-v1"),
        lambda: read_results([tmp_path / "none.jsonl"]),
        lambda: read_results([tmp_path / "bad.jsonl"]),
        lambda: PolicyRef.parse("a@x=dir"),
        lambda: load_policy(tmp_path),
        lambda: StudyConfig.from_toml(tmp_path / "bad.toml"),
        lambda: StudyConfig.from_toml(tmp_path / "none.toml"),
        lambda: make("tabletop-object/pick-ketchup-place-basket-v1", cameras=("nope",)),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(UserError):
            case()


def test_bad_perturbation_names_the_flag(capsys):
    assert main(["eval", "--checkpoints", "x", "--perturbations", "light@high"]) == 1
    err = capsys.readouterr().err  # checked before the checkpoint is looked at
    assert "--perturbations" in err and "light@high" in err
    with pytest.raises(SystemExit) as exc:  # the study checks them before hours of training
        main(["demo", "--study.perturbations", "light@high"])
    assert exc.value.code == 2
    assert "perturbations 'light@high'" in capsys.readouterr().err


def test_jerk_rejects_bad_npz_input(tmp_path, capsys):
    pos = pick_place_path(0.05)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    flat = tmp_path / "flat.npz"
    np.savez(flat, ee_pos=pos[:, :2])
    batch = np.stack([pos, pos])
    negative, too_long, fractional = (tmp_path / f"{n}.npz" for n in ("neg", "long", "frac"))
    np.savez(negative, ee_pos=batch, lengths=np.array([len(pos), -3]))
    np.savez(too_long, ee_pos=batch, lengths=np.array([len(pos), len(pos) + 5]))
    np.savez(fractional, ee_pos=batch, lengths=np.array([10.5, 20.0]))
    cases = [(empty, "not a readable .npz"), (flat, "(T, 3)"), (negative, "lengths"),
             (too_long, "lengths"), (fractional, "lengths")]
    for path, needle in cases:
        assert main(["jerk", str(path)]) == 1, path
        err = capsys.readouterr().err
        assert path.name in err and needle in err, (path, err)
        assert "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["jerk", str(flat), "--control-hz", "1e-300"])
    assert exc.value.code == 2
    assert "--control-hz" in capsys.readouterr().err


def test_jerk_short_paths_get_no_ldlj_and_a_warning(tmp_path, capsys):
    pos = pick_place_path(0.05)
    short = tmp_path / "short.npz"
    np.savez(short, ee_pos=pos[40:44])
    assert main(["jerk", str(short), "--json"]) == 0
    captured = capsys.readouterr()
    ep = json.loads(captured.out)["episodes"][0]
    assert np.isnan(ep["ldlj"]) and np.isnan(ep["sparc"]) and np.isfinite(ep["mean_jerk"])
    assert "4 samples" in captured.err and "LDLJ" in captured.err


def test_every_verb_checks_its_output_before_starting(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    results = tmp_path / "r.jsonl"
    results.write_text("")
    demos = tmp_path / "d.hdf5"
    demos.write_bytes(b"")
    runs = [
        ["collect", "--out", str(tmp_path), "--episodes-per-task", "1"],
        ["collect", "--out", str(blocker / "demos.hdf5")],
        ["eval", "--checkpoints", str(tmp_path / "nothere"), "--out", str(blocker / "r.jsonl")],
        ["report", "--results", str(results), "--out", str(blocker)],
        ["train", "--policy", str(tmp_path / "nothere"), "--tasks", "tabletop-object/x",
         "--out-dir", str(blocker)],
        ["sft", "--data", str(demos), "--run-dir", str(blocker / "run")],
        ["demo", "--study.out", str(blocker)],
    ]
    for argv in runs:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"smoothvla {argv[0]}: error: "), (argv, err)
        assert "blocker" in err or "is a folder" in err, (argv, err)


def test_bench_lists_and_runs_the_benchmarks(capsys):
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "metrics" in out and "benchmarks/bench_metrics.py" in out and "rollout" in out
    assert main(["bench", "nope"]) == 1
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert main(["bench", "metrics"]) == 0
    assert "mean_jerk, one (10^6, 3) path" in capsys.readouterr().out


# --- --config FILE.toml -------------------------------------------------------------------
def _toml(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_config_file_sets_fields_and_flags_override_it(tmp_path):
    from smoothvla.cli import parse
    from smoothvla.commands import sft

    path = _toml(tmp_path, 'data = ["demos.hdf5"]\nsteps = 7\nlr = 1\nrun_dir = "runs/x"\n'
                           '[policy]\nhead = "token"\nvision_trainable_blocks = 2\n')
    cfg = parse("sft", sft.Config, ["--config", path])
    assert cfg.data == ("demos.hdf5",) and cfg.steps == 7 and cfg.run_dir == "runs/x"
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)  # a TOML integer for a float field
    # the nested table sets two fields and leaves the others at their defaults
    assert cfg.policy.head == "token" and cfg.policy.vision_trainable_blocks == 2
    assert cfg.policy.n_layers == 3 and cfg.policy.chunk_size == 8
    # flags override the file, whether before or after --config, nested ones too
    cfg = parse("sft", sft.Config, ["--steps", "9", f"--config={path}", "--policy.head", "flow"])
    assert cfg.steps == 9 and cfg.policy.head == "flow" and cfg.policy.vision_trainable_blocks == 2
    assert cfg.data == ("demos.hdf5",)
    assert parse("sft", sft.Config, []).steps == 5000  # no file: the Config's own defaults


def test_config_file_nested_tables_of_train(tmp_path):
    from smoothvla.cli import parse
    from smoothvla.commands import train

    path = _toml(tmp_path, 'tasks = ["tabletop-object/pick-butter-place-basket-v1"]\n'
                           'init_ids = [0, 1, 2]\n[overrides]\ntemperature = 0.2\n'
                           '[grpo]\nlr = 1e-5\nratio_level = "token"\n[reward]\nname = "binary"\n')
    # the file lacks `policy`, which train requires: the command line gives it
    cfg = parse("train", train.Config, ["--config", path, "--policy", "ckpt", "--grpo.beta", "0.3"])
    assert cfg.tasks == ("tabletop-object/pick-butter-place-basket-v1",) and cfg.init_ids == (0, 1, 2)
    assert cfg.grpo.lr == 1e-5 and cfg.grpo.ratio_level == "token" and cfg.grpo.beta == 0.3
    assert cfg.reward.name == "binary" and cfg.policy == "ckpt" and cfg.overrides.temperature == 0.2


def test_config_file_errors_are_user_errors(tmp_path, capsys):
    bad = [
        ('stepz = 3\nbatch-size = 4\n[policy]\nhed = "token"\n',
         ["unknown keys", "'stepz'", "'batch-size'", "'policy.hed'"]),
        ('steps = "ten"\n', ["steps must be int", "'ten'"]),
        ('steps = 2.5\n', ["steps must be int"]),
        ('augment = 1\n', ["augment must be bool"]),
        ('data = "demos.hdf5"\n', ["data must be a list"]),
        ('policy = "token"\n', ["policy must be a table"]),
        ('precision = "fp16"\n', ["precision must be one of", "'fp16'"]),
        ('steps = [\n', ["not valid TOML"]),
    ]
    for i, (text, words) in enumerate(bad):
        path = _toml(tmp_path, text, f"bad{i}.toml")
        assert main(["sft", "--config", path]) == 1, text
        err = capsys.readouterr().err
        assert err.startswith("smoothvla sft: error:") and len(err.strip().splitlines()) == 1, err
        for word in words:
            assert word in err, (text, err)
    with pytest.raises(SystemExit):  # the Config's own checks run on the file's values (tyro)
        main(["sft", "--config", _toml(tmp_path, "steps = 0\n", "zero.toml")])
    assert "steps and batch_size must be >= 1" in capsys.readouterr().err
    assert main(["sft", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "no such config file" in capsys.readouterr().err
    for args in (["--config"], ["--config", "--steps", "3"], ["--config=a", "--config=b"]):
        assert main(["sft", *args]) == 1
        assert "--config" in capsys.readouterr().err


def test_config_file_keeps_required_fields_required(tmp_path, capsys):
    from smoothvla.cli import config_from_toml, parse
    from smoothvla.commands import eval as eval_cmd

    path = _toml(tmp_path, "num_init_states = 3\n")
    with pytest.raises(SystemExit):  # tyro: --checkpoints is required
        parse("eval", eval_cmd.Config, ["--config", path])
    assert "checkpoints" in capsys.readouterr().err
    cfg = parse("eval", eval_cmd.Config, ["--config", path, "--checkpoints", "a=b"])
    assert cfg.num_init_states == 3 and cfg.checkpoints == ("a=b",)
    assert config_from_toml(eval_cmd.Config, path).num_init_states == 3


def test_demo_keeps_its_own_config_flag():
    from smoothvla.cli import parse, takes_config_file
    from smoothvla.commands import demo, sft

    assert not takes_config_file(demo.Config) and takes_config_file(sft.Config)
    preset = "configs/study-smoothness.toml"
    cfg = parse("demo", demo.Config, ["--config", preset])
    assert str(cfg.config) == preset and cfg.study.name == "smoothness"  # the study preset
    assert cfg.study.seeds == (0, 1, 2) and cfg.study.train.iterations == 30
    # --study.* flags override the preset, the rest of it stays
    cfg = parse("demo", demo.Config, ["--config", preset, "--study.seeds", "1",
                                      "--study.train.iterations", "2"])
    assert cfg.study.seeds == (1,) and cfg.study.train.iterations == 2
    assert cfg.study.name == "smoothness" and cfg.study.train.group_size == 8
    assert parse("demo", demo.Config, ["--study.seeds", "3"]).study.name == "demo"
