"""No lost or silently wrong RL runs: resume always ends with the final policy exported,
changed flags on resume are refused or recorded, an iteration without trajectories stops
the run, and a --resume without a checkpoint says it starts fresh (docs/reliability.md)."""

import json
import shutil
from dataclasses import replace

import pytest
import torch
from fake_run import build

from smoothvla.errors import UserError
from smoothvla.rollout.fake_policy import GaussianChunkPolicy


def _saved_weights(path):
    return GaussianChunkPolicy.load(path).state_dict()


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage", ["missing", "stale"])
def test_resume_after_the_last_checkpoint_exports_the_final_policy(tmp_path, damage):
    out = tmp_path / "run"
    first, _ = build(out, 1)
    first.run()
    stale = tmp_path / "stale"
    shutil.copytree(out / "policy", stale)
    second, policy = build(out, 2, resume=True)
    second.run()
    final = {k: v.clone() for k, v in policy.state_dict().items()}
    # a kill after checkpoint/state.pt but before (or during) the export of policy/
    shutil.rmtree(out / "policy")
    if damage == "stale":
        shutil.copytree(stale, out / "policy")
    third, _ = build(out, 2, resume=True)
    assert third.run() == []  # nothing left to train...
    assert _same(_saved_weights(out / "policy"), final)  # ...but the final policy is exported
    assert not _same(_saved_weights(stale), final)


def test_a_failed_policy_export_fails_the_run(tmp_path, monkeypatch):
    trainer, policy = build(tmp_path / "run", 1)

    def broken(directory):
        raise ValueError("cannot export: no normalizer statistics")

    monkeypatch.setattr(policy, "save", broken)
    with pytest.raises(ValueError, match="no normalizer"):
        trainer.run()


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(lr=1e-2), "--grpo.lr"),  # the optimizer keeps the checkpoint's lr
        (dict(seed=6), "--seed"),  # the group RNG comes from the checkpoint, the env seeds not
        (dict(algorithm="ppo"), "--algorithm"),
        (dict(reward="binary"), "--reward.name"),
    ],
)
def test_resume_refuses_flags_that_cannot_take_effect(tmp_path, change, named):
    first, _ = build(tmp_path / "run", 1)
    first.run()
    before = (tmp_path / "run" / "config.json").read_text()
    again, _ = build(tmp_path / "run", 2, resume=True, **change)
    with pytest.raises(UserError, match=named) as err:
        again.run()
    assert "--resume" in str(err.value)
    # nothing was touched: the config on disk still tells the truth
    assert (tmp_path / "run" / "config.json").read_text() == before
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 1


def test_resume_allows_safe_changes_and_records_them(tmp_path):
    first, _ = build(tmp_path / "run", 1)
    first.run()
    messages = []
    again, _ = build(tmp_path / "run", 3, resume=True, echo=messages.append)
    again.cfg = replace(again.cfg, checkpoint_every=2)
    again.run()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["iterations"] == 3 and config["checkpoint_every"] == 2
    changes = [m for m in messages if m.startswith("resume: ")]
    assert changes == ["resume: checkpoint_every 1 -> 2", "resume: iterations 1 -> 3"]
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    assert state["config"]["iterations"] == 3


def test_resume_refuses_fewer_iterations_than_done(tmp_path):
    first, _ = build(tmp_path / "run", 2)
    first.run()
    again, _ = build(tmp_path / "run", 1, resume=True)
    with pytest.raises(UserError, match="iteration 2.*--iterations"):
        again.run()


def test_an_iteration_without_trajectories_stops_the_run(tmp_path):
    # every rollout of init state 3 fails in the env: the collector drops them all
    trainer, policy = build(tmp_path / "run", 2, init_ids=(3,), env_options={"raise_on_init_id": 3})
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    with pytest.raises(UserError, match="no trajectories") as err:
        trainer.run()
    assert "injected fault" in str(err.value)  # the collector's own message
    assert not (tmp_path / "run" / "policy").exists()  # no export of an untrained policy
    assert not (tmp_path / "run" / "checkpoint" / "state.pt").exists()
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert record["rollout/episodes"] == 0 and any("injected fault" in e for e in record["errors"])
    assert _same(policy.state_dict(), before)


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path):
    messages = []
    trainer, _ = build(tmp_path / "run", 1, resume=True, echo=messages.append)
    trainer.run()
    assert any("no checkpoint" in m and "from iteration 0" in m for m in messages)
    (record,) = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert record["start"] == "new (--resume found no checkpoint)"
    again, _ = build(tmp_path / "run", 2, resume=True)
    again.run()
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[1]["start"] == "resumed at iteration 1"


def test_run_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        trainer, _ = build(tmp_path / "run", 1)
        trainer.run()
    finally:
        os.umask(old)
    run = tmp_path / "run"
    # policy/ is the policy's own save (CompactVLA's: tests/test_io.py)
    for path in (run / "config.json", run / "log.jsonl", run / "checkpoint" / "state.pt"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path


def test_a_second_writer_of_the_same_run_is_refused(tmp_path):
    from smoothvla.io import lock_directory

    with lock_directory(tmp_path / "run", "train run"):  # another process training there
        trainer, _ = build(tmp_path / "run", 1)
        with pytest.raises(UserError, match="in use by another train run"):
            trainer.run()
        assert not (tmp_path / "run" / "log.jsonl").exists()
    trainer.run()  # the lock goes with its holder (a kill included)
    again, _ = build(tmp_path / "run", 2, resume=True)
    again.run()  # and run() releases its own


def test_resume_reads_a_checkpoint_config_saved_before_policy_overrides():
    """A run saved with top-level temperature / flow_sde_sigma (0: the checkpoint's) resumes
    with the same --overrides.* and refuses another temperature, naming it."""
    from dataclasses import asdict

    from smoothvla.algorithms.finetune import FinetuneConfig
    from smoothvla.algorithms.trainer import resume_changes
    from smoothvla.policies.overrides import PolicyOverrides

    cfg = FinetuneConfig(policy="p", tasks=("t",), overrides=PolicyOverrides(temperature=0.2))
    old = {k: v for k, v in asdict(cfg).items() if k != "overrides"}
    old.update(temperature=0.2, flow_sde_sigma=0.0)
    assert resume_changes(cfg, {"iteration": 1, "config": old}) == []
    old["temperature"] = 0.5
    with pytest.raises(UserError, match="overrides.temperature 0.2 \\(checkpoint: 0.5\\)"):
        resume_changes(cfg, {"iteration": 1, "config": old})
