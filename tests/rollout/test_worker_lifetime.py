"""`kill -9` of the parent: env and collect workers die with it, and the temporary files it
left are removed by the next run (real subprocesses, killed with SIGKILL; a point-mass env
and stand-in jobs keep it to seconds)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(script: str, wait_for: int) -> tuple[subprocess.Popen, list[int]]:
    """Run `script` in a subprocess; return it once it has `wait_for` worker children."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{HERE}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.strip() == "started" or proc.poll() is not None:
            break
    workers = []
    while time.time() < deadline and len(workers) < wait_for:
        workers = [c for c in _children(proc.pid)
                   if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]
        time.sleep(0.1)
    assert len(workers) >= wait_for, (proc.poll(), proc.stderr.read() if proc.poll() else "")
    return proc, workers


def _kill_and_check(proc: subprocess.Popen, workers: list[int]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:  # do not leave them behind if the test fails
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


def test_env_workers_die_with_a_killed_parent():
    proc, workers = _start("""
        import time
        from smoothvla.rollout.fake_env import make_point_mass
        from smoothvla.rollout.pool import ProcessPool
        pool = ProcessPool(2, num_workers=2, env_factory=make_point_mass)
        print("started", flush=True)
        time.sleep(600)
    """, wait_for=2)
    _kill_and_check(proc, workers)


def test_collect_workers_die_with_a_killed_parent_and_the_next_run_sweeps_its_temp_file(
        tmp_path, monkeypatch):
    out = tmp_path / "demos.hdf5"
    proc, workers = _start(f"""
        import sys, threading
        import slow_jobs
        from smoothvla.commands import collect
        from smoothvla.experts import collect as demos
        demos.JOB_RUNNER = slow_jobs.hang
        cfg = collect.Config(out={str(out)!r}, suite="tabletop-object", episodes_per_task=1,
                             workers=1, tasks=("pick-ketchup-place-basket",), cameras=())
        threading.Timer(1.0, lambda: print("started", flush=True)).start()
        collect.run(cfg)
    """, wait_for=1)
    stale = list(tmp_path.glob(".demos.hdf5.tmp-*"))
    assert stale, "collect writes to a temporary file while it works"
    _kill_and_check(proc, workers)

    sys.path.insert(0, str(HERE))
    import slow_jobs

    from smoothvla.commands import collect
    from smoothvla.experts import collect as demos

    (tmp_path / ".demos.hdf5.tmp-1").write_text("pid 1 is alive: not stale")
    monkeypatch.setattr(demos, "JOB_RUNNER", slow_jobs.fail)
    cfg = collect.Config(out=out, suite="tabletop-object", episodes_per_task=1, workers=1,
                         tasks=("pick-ketchup-place-basket",), cameras=())
    assert collect.run(cfg) == 1  # every stand-in episode fails: nothing written
    assert not any(p.exists() for p in stale)
    assert (tmp_path / ".demos.hdf5.tmp-1").exists()
