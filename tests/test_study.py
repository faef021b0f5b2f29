"""The study pipeline end to end on a tiny budget: demos -> SFT -> GRPO x2 -> eval -> report,
and a re-run that skips finished stages and resumes an interrupted evaluation."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothvla.cli import main
from smoothvla.eval.results import read_results
from smoothvla.errors import UserError
from smoothvla.study import Study, StudyConfig, study_sft, study_train

TINY = dict(
    name="tiny", suite="tabletop-object", tasks=("pick-ketchup-place-basket",),
    demos_per_task=2, methods=("grpo-binary", "smoothvla-grpo"), eval_init_states=2,
    perturbations=("light",), workers=1, envs_per_worker=2,
)
TINY_SFT = {"steps": 10}
TINY_TRAIN = {"iterations": 1, "group_size": 2, "groups_per_iteration": 1, "max_steps": 16}


def tiny_config(sft=None, train=None, **fields) -> StudyConfig:
    """TINY with `fields`, its [sft] table TINY_SFT with `sft` and its [train] table
    TINY_TRAIN with `train` (nested tables as dicts: {"grpo": {"beta": 0.1}})."""
    return StudyConfig(**{**TINY, **fields}, sft=_table(study_sft(), {**TINY_SFT, **(sft or {})}),
                       train=_table(study_train(), {**TINY_TRAIN, **(train or {})}))


def _table(base, values):
    return replace(base, **{k: _table(getattr(base, k), v) if isinstance(v, dict) else v
                            for k, v in values.items()})


def _toml(values: dict, table: str = "") -> list[str]:
    """TOML lines of `values`, nested dicts as tables."""
    lines = [f"[{table}]"] if table else []
    lines += [f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}"
              for k, v in values.items() if not isinstance(v, dict)]
    for k, v in values.items():
        if isinstance(v, dict):
            lines += _toml(v, f"{table}.{k}" if table else k)
    return lines


def tiny_sft(path):
    """A tiny policy checkpoint (flow head) at `path`."""
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

    rng = np.random.default_rng(0)
    CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32,
                         n_layers=1, n_heads=2, ff_dim=64, chunk_size=4),
               Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)), rng.normal(size=(50, 8)))).save(path)
    return path


def test_tiny_study_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "study"
    cfg_path = tmp_path / "tiny.toml"
    lines = _toml({"out": str(out), **TINY, "sft": TINY_SFT, "train": TINY_TRAIN})
    cfg_path.write_text("\n".join(lines) + "\n")
    assert main(["demo", "--config", str(cfg_path)]) == 0
    printed = capsys.readouterr().out
    assert "smoothvla-grpo" in printed and "report:" in printed
    results = read_results([out / "results.jsonl"])
    # 3 policies x 1 task x 2 init states x (in distribution + light)
    assert len(results) == 12
    assert {r.policy for r in results} == {"sft", "grpo-binary", "smoothvla-grpo"}
    assert (out / "report" / "report.html").stat().st_size > 10_000
    assert json.loads((out / ".jerk_scale.done").read_text()) > 0

    # Interrupt the evaluation: drop the last 5 episodes, then run again.
    kept = (out / "results.jsonl").read_text().splitlines()[:-5]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n")
    cfg = StudyConfig.from_toml(cfg_path)
    study = Study(cfg)
    study.run()
    assert set(study.timings) == {"eval-s0", "report"}  # everything else was skipped
    again = read_results([out / "results.jsonl"])
    assert len(again) == 12 and len({r.key for r in again}) == 12

    # A config changed in what finished stages computed is refused before any work ...
    with pytest.raises(UserError, match=r"train.iterations: 1 -> 2"):
        Study(tiny_config(out=str(out), train={"iterations": 2}))
    # ... one that adds an execution scheme evaluates it on the next run, nothing else
    study = Study(tiny_config(out=str(out), executions=("ensemble:2",)))
    study.run()
    assert set(study.timings) == {"eval-s0", "report"}
    again = read_results([out / "results.jsonl"])
    assert len(again) == 24 and {r.policy for r in again} >= {"sft+ensemble:2", "grpo-binary+ensemble:2"}


def test_study_from_a_given_sft_checkpoint_skips_sft_and_evaluates_execution_schemes(tmp_path):
    sft = tiny_sft(tmp_path / "sft")
    # [sft.policy] left at 128 px: the checkpoint's own 32 px are what its envs render
    cfg = tiny_config(methods=("grpo-random",), seeds=(0, 1), eval_init_states=1,
                      perturbations=(), out=str(tmp_path / "study"), sft_checkpoint=str(sft),
                      train={"max_steps": 8, "grpo": {"ratio_level": "token", "beta": 0.1},
                             "init_ids": (0, 1), "execution": {"scheme": "receding", "steps": 2}},
                      executions=("ensemble", "receding:2"))
    study = Study(cfg)
    study.run()
    # the demonstrations serve as the experts' jerk reference only: no image is rendered
    assert set(study.timings) == {"collect", "jerk_scale", "grpo-random-s0", "grpo-random-s1",
                                  "eval-s0", "eval-s1", "report"}
    from smoothvla.data.hdf5 import iter_demos

    for _, demo in iter_demos(tmp_path / "study" / "demos.hdf5"):
        assert not any(k.endswith("_rgb") for k in demo.obs) and demo.attrs["expert_mean_jerk"] > 0
    results = read_results([tmp_path / "study" / "results.jsonl"])
    assert {r.settings["env_options"]["image_size"] for r in results} == {32}
    # SFT once (the given checkpoint) + RL per seed, 1 task x 1 init state each, each acted
    # with whole chunks, temporal ensembling and a receding horizon
    assert sorted((r.policy, r.train_seed) for r in results) == sorted(
        (p + s, seed) for p, seeds in (("sft", [0]), ("grpo-random", [0, 1]))
        for seed in seeds for s in ("", "+ensemble", "+receding:2"))
    # the RL rollouts re-planned every 2 steps
    log = [json.loads(line) for line in (tmp_path / "study" / "grpo-random-s0" / "log.jsonl").open()]
    assert log[0]["rollout/chunks"] >= log[0]["rollout/env_steps"] / 2
    # random rewards always spread, so GRPO updates, with the KL term to the starting policy
    log = [json.loads(line) for line in (tmp_path / "study" / "grpo-random-s1" / "log.jsonl").open()]
    assert log[0]["updates"] == 1 and "kl_ref" in log[0]
    with pytest.raises(FileNotFoundError, match="not a policy checkpoint"):
        StudyConfig(sft_checkpoint=str(tmp_path / "nowhere"))


def test_study_methods_map_to_their_smoothness_credit(tmp_path):
    sft = tiny_sft(tmp_path / "sft")
    study = Study(tiny_config(out=str(tmp_path / "s"), sft_checkpoint=str(sft),
                              train={"grpo": {"smooth_weight": 0.3}}, dense_jerk_weight=0.4))
    expected = {
        "grpo-binary": ("grpo", "binary", "standard", 0.0),
        "smoothvla-grpo": ("grpo", "smooth", "standard", 0.0),
        "grpo-decoupled": ("grpo", "binary", "decoupled", 0.0),
        "grpo-chunk-credit": ("grpo", "binary", "chunk", 0.0),
        "ppo-dense-jerk": ("ppo", "binary", "standard", 0.4),
    }
    for method, (algorithm, reward, advantage, dense) in expected.items():
        cfg = study.train_config(method, 1, str(sft), 2.0)
        assert (cfg.algorithm, cfg.reward.name, cfg.grpo.advantage, cfg.ppo.dense_jerk_weight) == (
            algorithm, reward, advantage, dense)
        assert cfg.grpo.smooth_weight == 0.3 and cfg.seed == 1
        assert cfg.out_dir.endswith(f"{method}-s1")


def test_study_config_errors(tmp_path):
    with pytest.raises(ValueError, match="evaluation only"):
        tiny_config(train={"execution": {"scheme": "ensemble"}})
    with pytest.raises(ValueError, match="unknown execution scheme"):
        StudyConfig(executions=("smoothest",))
    with pytest.raises(ValueError, match="unknown methods"):
        StudyConfig(methods=("grpo-magic",))
    with pytest.raises(ValueError, match="group_size"):
        tiny_config(train={"group_size": 1})
    with pytest.raises(ValueError, match="ratio_level"):
        tiny_config(train={"grpo": {"ratio_level": "step"}})
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nlearning_rate = 3\n')
    with pytest.raises(ValueError, match="unknown keys"):
        StudyConfig.from_toml(bad)
    bad.write_text("name = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        StudyConfig.from_toml(bad)
    with pytest.raises(FileNotFoundError):
        StudyConfig.from_toml(tmp_path / "missing.toml")
    # what the study sets for each run cannot be set in its tables
    with pytest.raises(UserError, match="train.seed is set by the study"):
        tiny_config(train={"seed": 3})
    with pytest.raises(UserError, match="train.reward.name is set by the study"):
        tiny_config(train={"reward": {"name": "binary"}})
    with pytest.raises(UserError, match="sft.run_dir is set by the study"):
        tiny_config(sft={"run_dir": "elsewhere"})
    # the old flat keys are unknown keys now
    bad.write_text('name = "x"\nrl_lr = 1e-5\n')
    with pytest.raises(UserError, match="unknown keys.*rl_lr"):
        StudyConfig.from_toml(bad)


def test_an_evaluation_the_suite_cannot_run_is_refused_before_any_stage(tmp_path):
    study = Study(tiny_config(out=str(tmp_path / "s"), eval_init_states=10**6))
    with pytest.raises(UserError, match="init states 0..999999 asked"):
        study.run()
    assert not (tmp_path / "s" / "demos.hdf5").exists() and not study.timings


def test_study_tables_keep_the_study_defaults_they_leave_out(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "x"\n[train]\niterations = 3\n[train.grpo]\nbeta = 0.1\n'
                    '[sft.policy]\nchunk_size = 4\n')
    cfg = StudyConfig.from_toml(path)
    assert cfg.train.iterations == 3 and cfg.train.grpo.beta == 0.1
    # left out: the study's defaults, not `smoothvla train`'s
    assert cfg.train.groups_per_iteration == 2 and cfg.train.overrides.temperature == 0.2
    assert cfg.train.reward.jerk_scale_from_policy and cfg.train.checkpoint_every == 1
    assert cfg.sft.policy.chunk_size == 4 and cfg.sft.policy.head == "token"
    assert cfg.sft.steps == 2000 and cfg.sft.eval_every == 0


def test_resuming_a_study_of_the_old_flat_layout_is_a_clear_error(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    old = {**TINY, "out": str(out), "rl_iterations": 1, "rl_lr": 2e-5, "sft_steps": 10,
           "kl_beta": 0.0, "rl_temperature": 0.2, "head": "token"}
    (out / "study.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match="older smoothvla.*\\[sft\\] and \\[train\\]"):
        Study(tiny_config(out=str(out)))
    (out / "study.json").write_text("{not json")
    with pytest.raises(UserError, match="not a study config"):
        Study(tiny_config(out=str(out)))


def test_demo_synthetic(capsys):
    assert main(["demo", "--synthetic"]) == 0
    out = capsys.readouterr().out
    assert "minimum-jerk expert" in out and "smooth reward" in out


def test_packaged_checkpoints_resolve_by_name():
    from smoothvla.policies import load_policy
    from smoothvla.policies.packaged import resolve_checkpoint

    path = resolve_checkpoint("smoothvla:demo-token")
    assert (Path(path) / "RECIPE.md").is_file()
    policy = load_policy(path)  # trainable weights only: the encoder comes from its package
    assert policy.cfg.head == "token" and policy.cfg.vision_encoder == "efficientnet-lite0"
    assert resolve_checkpoint("runs/x") == "runs/x"
    with pytest.raises(FileNotFoundError, match="no such packaged checkpoint"):
        resolve_checkpoint("smoothvla:nothing")
    from smoothvla.eval.runner import PolicyRef

    assert PolicyRef.parse("sft=smoothvla:demo-token").path == path
    by_name = load_policy("smoothvla:demo-token")  # every verb's loader takes the name
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(),
                                                 policy.state_dict().values()))


def test_smoothness_rows_per_seed_success_and_metric_intervals_over_successes(tmp_path):
    from smoothvla.eval.results import EpisodeResult, ResultsFile
    from smoothvla.study import smoothness_rows

    def ep(policy, init, train_seed, success, jerk, ldlj, sparc=-2.0, jump=0.1, pert="none"):
        return EpisodeResult(policy=policy, task_id="t", init_id=init, seed=0, perturbation=pert,
                             train_seed=train_seed, success=success, mean_jerk=jerk, ldlj=ldlj,
                             sparc=sparc, chunk_jump=jump)

    results = ResultsFile(tmp_path / "r.jsonl")
    results.append_new([
        ep("grpo-binary", 0, 0, True, 10.0, -8.0), ep("grpo-binary", 1, 0, False, 99.0, -1.0),
        ep("grpo-binary", 0, 1, True, 14.0, -9.0), ep("grpo-binary", 1, 1, True, 12.0, -10.0),
        ep("sft", 0, 0, True, 20.0, -7.0, jump=0.3), ep("sft", 1, 0, True, 20.0, -7.0, jump=0.3),
        ep("sft", 2, 0, False, 5.0, -1.0, pert="light"),  # not in distribution: not counted
    ])
    header, rows = smoothness_rows(results.path, ("grpo-binary",))
    assert header[:3] == ["policy", "success % per seed", "jerk m/s^3 [95% CI]"]
    assert [r[0] for r in rows] == ["sft", "grpo-binary"]
    assert rows[0][1] == "100" and rows[1][1] == "50 / 100"
    # the failed episode's jerk (99) is left out: mean 12 of (10, 14, 12), t-interval
    # 12 +- 4.303 * 2 / sqrt(3) = [7.03, 17.0]
    assert rows[1][2] == "12 [7.03, 17]"
    assert rows[1][3].startswith("-9 [")
    # two identical values: an interval of zero width
    assert rows[0][2] == "20 [20, 20]" and rows[0][5] == "0.3 [0.3, 0.3]"
