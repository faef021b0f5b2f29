"""`smoothvla eval` on a tiny checkpoint: bad options refused before any episode, a re-run
with other settings refused (naming them) or relabelled, never answered with the old table."""

import numpy as np
import pytest

from smoothvla.cli import main
from smoothvla.eval import read_results
from smoothvla.rollout.fake_policy import save_tiny_vla

TASK = "tabletop-object/pick-ketchup-place-basket-v1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = save_tiny_vla(tmp_path_factory.mktemp("ckpt") / "sft", chunk_size=8, head="token")
    return path


@pytest.mark.parametrize("flags, message", [
    (["--perturbations", "ligth"], "--perturbations: unknown perturbation 'ligth'"),
    (["--perturbations", "light@1.5"], "--perturbations: strength of 'light@1.5' must be in [0, 1]"),
    (["--first-init", "45"], "--first-init/--num-init-states: init states 45..54"),
    (["--seeds", "-1"], "--seeds: env seeds must be integers >= 0"),
    (["--tasks", "nope"], "--tasks: unknown tasks"),
])
def test_bad_options_are_refused_before_loading_anything(tmp_path, capsys, flags, message):
    out = tmp_path / "r.jsonl"
    argv = ["eval", "--checkpoints", f"x={tmp_path / 'not-loaded'}", "--out", str(out)] + flags
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_rerun_with_other_settings_is_refused_or_relabelled(tmp_path, capsys, checkpoint):
    out = tmp_path / "r.jsonl"
    base = ["eval", "--checkpoints", f"sft={checkpoint}", "--tasks", TASK, "--num-init-states",
            "1", "--workers", "0", "--envs-per-worker", "1", "--out", str(out)]
    assert main(base) == 0
    assert len(read_results([out])) == 1
    capsys.readouterr()
    receding = ["--execution.scheme", "receding", "--execution.steps", "4"]
    assert main(base + receding) == 1
    err = capsys.readouterr().err
    assert "execution.steps: stored default, now 4" in err and "--relabel" in err
    assert main(base + receding + ["--relabel"]) == 0
    rows = read_results([out])
    label = "sft[execution.scheme=receding,execution.steps=4]"
    assert sorted(r.policy for r in rows) == ["sft", label]
    assert label in capsys.readouterr().out
    # sampled (the compact VLA acting one observation at a time, seeded per episode)
    assert main(base + ["--sample", "--overrides.temperature", "1.0", "--sampling-seed", "3",
                        "--relabel"]) == 0
    sampled = [r for r in read_results([out]) if r.settings.get("sample")]
    assert [r.policy for r in sampled] == ["sft[sample=true,sampling_seed=3,temperature=1.0]"]
    assert sampled[0].settings == {"sample": True, "sampling_seed": 3, "temperature": 1.0}


def test_flow_steps_on_another_head_is_refused(tmp_path, capsys):
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
    from smoothvla.policies.head_configs import TokenHeadConfig

    rng = np.random.default_rng(0)
    CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32,
                         n_layers=1, n_heads=2, ff_dim=64, chunk_size=8, head="token",
                         token=TokenHeadConfig(bins=16)),
               Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)), rng.normal(size=(50, 8)))
               ).save(tmp_path / "tok")
    out = tmp_path / "r.jsonl"
    assert main(["eval", "--checkpoints", f"tok={tmp_path / 'tok'}", "--tasks", TASK,
                 "--workers", "0", "--overrides.flow-steps", "30", "--out", str(out)]) == 1
    assert "--overrides.flow-steps" in capsys.readouterr().err and not out.exists()


def test_sampling_overrides_on_a_greedy_evaluation_are_refused(tmp_path, capsys, checkpoint):
    """--overrides.temperature changes sampled actions only: without --sample it would be
    recorded in the rows yet change nothing, so it is refused before any episode runs."""
    out = tmp_path / "r.jsonl"
    argv = ["eval", "--checkpoints", f"sft={checkpoint}", "--tasks", TASK, "--num-init-states",
            "1", "--workers", "0", "--overrides.temperature", "0.5", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--overrides.temperature" in err and "--sample" in err and not out.exists()
