"""Episode records: append, resume, repair after a crash, statistics by hand."""

import json
import math

import pytest

from smoothvla.eval import EpisodeResult, ResultsFile, continuous_grasp, mean_ci, read_results, relative_drop, wilson_interval
from smoothvla.errors import UserError
from smoothvla.eval.summary import summarize


def ep(policy="sft", init=0, success=True, pert="none", jerk=1.0, seed=0, train_seed=0, suite="s"):
    return EpisodeResult(policy=policy, task_id=f"{suite}/t", init_id=init, seed=seed,
                         perturbation=pert, suite=suite, success=success, mean_jerk=jerk,
                         train_seed=train_seed)


def test_append_resume_and_repair(tmp_path):
    path = tmp_path / "results.jsonl"
    f = ResultsFile(path)
    f.append(ep(init=0))
    f.append(ep(init=1, success=False))
    assert f.done_keys() == {ep(init=0).key, ep(init=1).key}
    with open(path, "a") as raw:  # a crash in the middle of writing the third line
        raw.write('{"policy": "sft", "task_')
    again = ResultsFile(path)
    assert [r.init_id for r in again.read()] == [0, 1]
    again.append(ep(init=2))
    assert [r.init_id for r in read_results([path])] == [0, 1, 2]


def test_corrupt_and_missing_results(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"policy": "x", "nonsense": 1}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not an episode result"):
        read_results([bad])
    with pytest.raises(FileNotFoundError, match="no such results file"):
        read_results([tmp_path / "nope.jsonl"])


def test_continuous_grasp():
    assert continuous_grasp([0, 1, 1, 1], success=False) == (True, True, 1)
    assert continuous_grasp([0, 1, 1, 0, 0], success=True) == (True, True, 1)  # released at goal
    assert continuous_grasp([0, 1, 1, 0, 0], success=False) == (True, False, 1)  # dropped
    assert continuous_grasp([1, 0, 1, 1], success=False) == (True, False, 0)  # re-grasped
    assert continuous_grasp([0, 0, 0], success=False) == (False, False, -1)


def test_statistics_by_hand():
    # Wilson, 8/10: centre (0.8 + z^2/20) / (1 + z^2/10), z = 1.96 -> [0.490, 0.943]
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    # mean 2, sample std 1, n = 3: half width t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.732
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert relative_drop(0.6, 0.8) == pytest.approx(-0.25)
    assert math.isnan(relative_drop(0.5, 0.0))


def test_summarize_cells_and_drop():
    results = [ep(init=i, success=i < 8) for i in range(10)]
    results += [ep(init=i, pert="light", success=i < 6, jerk=2.0) for i in range(10)]
    results += [ep(init=i, success=i < 4, train_seed=1) for i in range(10)]
    cells = {c.perturbation: c for c in summarize(results)}
    assert cells["none"].episodes == 20 and cells["none"].success == pytest.approx(0.6)
    assert cells["none"].success_seed_std == pytest.approx(0.2)  # seeds at 0.8 and 0.4
    assert cells["light"].drop == pytest.approx((0.6 - 0.6) / 0.6)
    assert cells["light"].mean_jerk == pytest.approx(2.0)


def test_results_without_the_jerk_split_still_read(tmp_path):
    old = {"policy": "sft", "task_id": "s/t", "init_id": 0, "seed": 0, "success": True,
           "mean_jerk": 2.0, "chunk_jump": 0.1, "ee_path": [[0, 0, 0]] * 4}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    (r,) = read_results([path])
    assert math.isnan(r.jerk_boundary) and math.isnan(r.jerk_event_share)
    assert r.chunk_start_steps is None and r.event_steps is None
    f = ResultsFile(tmp_path / "new.jsonl")
    f.append(EpisodeResult(policy="p", task_id="s/t", init_id=0, seed=0, jerk_boundary=3.0,
                           jerk_event_share=0.25, chunk_start_steps=[0, 8], event_steps=[5]))
    (back,) = f.read()
    assert (back.jerk_boundary, back.jerk_event_share) == (3.0, 0.25)
    assert back.chunk_start_steps == [0, 8] and back.event_steps == [5]


def test_summarize_averages_the_jerk_split_per_episode():
    nan = float("nan")
    results = [
        EpisodeResult(policy="p", task_id="s/t", suite="s", init_id=0, seed=0, success=True,
                      jerk_boundary=4.0, jerk_boundary_share=0.5, jerk_event=nan),
        EpisodeResult(policy="p", task_id="s/t", suite="s", init_id=1, seed=0, success=True,
                      jerk_boundary=2.0, jerk_boundary_share=0.3, jerk_event=6.0),
        EpisodeResult(policy="p", task_id="s/t", suite="s", init_id=2, seed=0, success=False,
                      jerk_boundary=9.0, jerk_boundary_share=0.7, jerk_event=nan),
    ]
    (cell,) = summarize(results)
    assert cell.jerk_split["jerk_boundary"] == pytest.approx(3.0)  # successes only
    assert cell.jerk_split["jerk_boundary_share"] == pytest.approx(0.4)
    assert cell.jerk_split["jerk_event"] == 6.0  # episodes without event windows left out
    assert cell.jerk_split_all["jerk_boundary"] == pytest.approx(5.0)
    assert cell.jerk_split_all["jerk_boundary_share"] == pytest.approx(0.5)
    assert math.isnan(cell.jerk_split["jerk_inside"])  # old results: not measured


# -- the result key, validation on read, duplicates, concurrent writers ---------------------

def test_key_holds_checkpoint_and_settings():
    a = EpisodeResult(policy="p", task_id="s/t", init_id=0, seed=0, checkpoint="abc",
                      settings={"execute_steps": 4})
    assert a.key != EpisodeResult(**{**a.__dict__, "settings": {"execute_steps": 2}}).key
    assert a.key != EpisodeResult(**{**a.__dict__, "checkpoint": "abd"}).key
    # settings are compared canonically: key order does not matter
    b = EpisodeResult(**{**a.__dict__, "settings": {"sample": True, "temperature": 0.2}})
    c = EpisodeResult(**{**a.__dict__, "settings": {"temperature": 0.2, "sample": True}})
    assert b.key == c.key


def test_old_rows_without_settings_read_as_unknown(tmp_path):
    old = tmp_path / "old.jsonl"
    record = {"policy": "sft", "task_id": "s/t", "init_id": 0, "seed": 0, "success": True}
    old.write_text(json.dumps(record) + "\n")
    (r,) = read_results([old])
    assert r.checkpoint is None and r.settings is None and r.success is True


@pytest.mark.parametrize("field, value, message", [
    ("success", "false", "success: expected a JSON bool"),
    ("success", 1, "success: expected a JSON bool"),
    ("init_id", 1.5, "init_id: expected an integer"),
    ("init_id", True, "init_id: expected an integer"),
    ("mean_jerk", "1.0", "mean_jerk: expected a number"),
    ("mean_jerk", float("inf"), "mean_jerk: expected a finite number or NaN"),
    ("strength", float("nan"), "strength: expected a finite number"),
    ("policy", 3, "policy: expected a string"),
    ("settings", [1], "settings: expected an object"),
    ("ee_path", [[0.0, "x", 0.0]], "ee_path: expected"),
])
def test_rows_are_type_checked_on_read(tmp_path, field, value, message):
    path = tmp_path / "typed.jsonl"
    good = {"policy": "sft", "task_id": "s/t", "init_id": 0, "seed": 0, "success": False,
            "mean_jerk": float("nan")}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, field: value}) + "\n")
    with pytest.raises(UserError, match=rf"typed.jsonl:2: .*{message}"):
        read_results([path])


def test_reading_drops_duplicates_and_says_so(tmp_path, caplog):
    path = tmp_path / "r.jsonl"
    f = ResultsFile(path)
    for i in range(4):
        f.append(ep(init=i, success=i < 2))
    with caplog.at_level("WARNING"):
        both = read_results([path, path])  # `smoothvla report --results X X`
    assert len(both) == 4
    assert "4 duplicate episode(s)" in caplog.text
    cells = summarize(both)
    assert cells[0].episodes == 4 and cells[0].success == pytest.approx(0.5)


def test_a_second_append_of_the_same_episode_is_not_stored(tmp_path):
    f = ResultsFile(tmp_path / "r.jsonl")
    assert f.append_new([ep(init=0), ep(init=1)]) == [ep(init=0), ep(init=1)]
    assert f.append_new([ep(init=1), ep(init=2)]) == [ep(init=2)]
    assert [r.init_id for r in read_results([f.path])] == [0, 1, 2]


def test_a_partial_last_line_of_a_running_writer_is_skipped_on_read(tmp_path):
    path = tmp_path / "r.jsonl"
    ResultsFile(path).append(ep(init=0))
    with open(path, "a") as raw:
        raw.write('{"policy": "sft", "task_')
    assert [r.init_id for r in read_results([path])] == [0]


def _writer(path, start_event, n):
    start_event.wait()
    f = ResultsFile(path)
    for i in range(0, n, 3):
        f.append_new([ep(init=j) for j in range(i, min(i + 3, n))])


def test_concurrent_writers_never_duplicate_an_episode(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "r.jsonl"
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, start, 60)) for _ in range(3)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 60
    assert sorted(json.loads(line)["init_id"] for line in lines) == list(range(60))


def test_every_field_has_a_type_check():
    from smoothvla.eval.results import _CHECKS

    assert [name for name, check in _CHECKS.items() if check is None] == []


def test_summarize_refuses_a_label_mixing_settings_or_checkpoints():
    from dataclasses import replace

    rows = [replace(ep(init=i), checkpoint="a", settings={}) for i in range(2)]
    assert summarize(rows)[0].episodes == 2
    seeds = rows + [replace(ep(init=0, train_seed=1), checkpoint="b", settings={})]
    assert summarize(seeds)[0].episodes == 3  # another training seed is another checkpoint
    with pytest.raises(UserError, match=r"'sft'.*execute_steps"):
        summarize(rows + [replace(ep(init=2), checkpoint="a", settings={"execute_steps": 4})])
    with pytest.raises(UserError, match=r"'sft'.*checkpoint"):
        summarize(rows + [replace(ep(init=2), checkpoint="z", settings={})])
    with pytest.raises(UserError, match=r"'sft'.*unknown"):
        summarize(rows + [ep(init=2)])  # a row of an older file: settings unknown


def test_a_write_that_would_mix_a_label_is_refused_under_the_lock(tmp_path):
    # two evaluations that started together both passed evaluate's check on an empty file
    from dataclasses import replace

    f = ResultsFile(tmp_path / "r.jsonl")
    f.append_new([replace(ep(init=0), checkpoint="a", settings={})])
    with pytest.raises(UserError, match=r"'sft'.*execute_steps"):
        f.append_new([replace(ep(init=1), checkpoint="a", settings={"execute_steps": 4})])
    assert f.append_new([replace(ep(init=1, policy="other"), checkpoint="b", settings={"x": 1})])
    assert len(read_results([f.path])) == 2
