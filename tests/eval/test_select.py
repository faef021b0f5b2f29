"""Choosing an RL study's tasks from the starting policy's evaluation (smoothvla.eval.select)."""

import pytest

from smoothvla.errors import UserError
from smoothvla.eval.results import EpisodeResult, ResultsFile
from smoothvla.eval.select import TaskRate, main, select_tasks, task_success


def rows(task: str, successes: int, episodes: int, policy: str = "sft", pert: str = "none"):
    return [EpisodeResult(policy=policy, task_id=task, init_id=i, seed=0, perturbation=pert,
                          success=i < successes) for i in range(episodes)]


def rates(**per_task: tuple[int, int]) -> list[TaskRate]:
    return [TaskRate(f"s/{t}", k, n) for t, (k, n) in per_task.items()]


def test_task_success_counts_in_distribution_episodes_of_one_policy():
    results = (rows("s/a", 3, 10) + rows("s/b", 0, 4) + rows("s/a", 10, 10, pert="light")
               + rows("s/a", 1, 2, policy="grpo"))
    assert task_success(results, "sft") == [TaskRate("s/a", 3, 10), TaskRate("s/b", 0, 4)]
    assert task_success(results, "grpo") == [TaskRate("s/a", 1, 2)]
    with pytest.raises(UserError, match="policies grpo, sft.*--policy"):
        task_success(results)
    assert task_success(rows("s/a", 1, 2)) == [TaskRate("s/a", 1, 2)]  # the only policy
    with pytest.raises(UserError, match="no in-distribution episode of policy 'ppo'"):
        task_success(results, "ppo")


def test_tasks_strictly_inside_the_band_nearest_half_first():
    # a 30% (0.2 from 0.5), b 90% (on the bound: out), c 60% (0.1), d 10% (out), e 50% (0)
    r = rates(a=(3, 10), b=(9, 10), c=(6, 10), d=(1, 10), e=(25, 50))
    assert select_tasks(r) == ["s/a", "s/c", "s/e"]  # in the order of the results
    assert select_tasks(r, max_tasks=2) == ["s/c", "s/e"]  # the two nearest 50%
    assert select_tasks(r, max_tasks=1) == ["s/e"]
    assert select_tasks(r, low=0.0, high=1.0) == ["s/a", "s/b", "s/c", "s/d", "s/e"]
    # a tie (40% and 60%, both 0.1 from half) keeps the results' order
    assert select_tasks(rates(x=(4, 10), y=(6, 10), z=(5, 10)), max_tasks=2) == ["s/x", "s/z"]


def test_without_a_task_in_the_band_the_weakest_that_succeed_at_all():
    # f never succeeds (no signal at all), g 95%, h 100%, i 92%
    r = rates(f=(0, 50), g=(19, 20), h=(50, 50), i=(46, 50))
    assert select_tasks(r) == ["s/g", "s/h", "s/i"]
    assert select_tasks(r, max_tasks=2) == ["s/g", "s/i"]  # 92% and 95%, not 100%
    with pytest.raises(UserError, match="succeeds on none of the 2 task"):
        select_tasks(rates(f=(0, 50), j=(0, 3)))
    with pytest.raises(UserError, match="low < high"):
        select_tasks(r, low=0.9, high=0.1)
    with pytest.raises(UserError, match="max_tasks"):
        select_tasks(r, max_tasks=-1)


def test_module_prints_the_chosen_task_ids(tmp_path, capsys):
    path = tmp_path / "eval.jsonl"
    ResultsFile(path).append_new(rows("s/a", 5, 10) + rows("s/b", 10, 10) + rows("s/c", 2, 10))
    assert main(["--results", str(path), "--max-tasks", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == ["s/a"]
    assert "*    5/10    50.0%  s/a" in err and "10/10   100.0%  s/b" in err
    assert main(["--results", str(tmp_path / "none.jsonl")]) == 1
    assert "no such results file" in capsys.readouterr().err
