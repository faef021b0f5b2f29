"""`smoothvla report` on fresh result files; the HTML checked in headless Chromium."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest

from smoothvla.cli import main
from smoothvla.eval import EpisodeResult, ResultsFile, read_results
from smoothvla.eval.runner import PolicyRef, episode_result
from smoothvla.eval.summary import Cell, summarize
from smoothvla.metrics.attribution import SPLIT_KEYS
from smoothvla.metrics.synthetic import jittery, pick_place_path
from smoothvla.report import figures
from smoothvla.report.study_tables import jerk_source_table
from smoothvla.trajectory import Trajectory


def make_results(path, rng):
    f = ResultsFile(path)
    base = pick_place_path(0.05)
    for policy, rate, noise in [("sft", 0.7, 2e-5), ("grpo-binary", 0.8, 1e-4),
                                ("smoothvla-grpo", 0.8, 3e-5)]:
        for train_seed in range(2):
            for pert, drop in [("none", 0.0), ("light", 0.2), ("language", 0.3)]:
                for init in range(6):
                    success = bool(rng.random() < rate - drop)
                    p = jittery(base, noise, rng)
                    f.append(EpisodeResult(
                        policy=policy, task_id="tabletop-object/pick-x-v1", suite="tabletop-object",
                        init_id=init, seed=0, perturbation=pert, train_seed=train_seed,
                        success=success, grasp=True, cont_grasp=success, steps=len(p) - 1,
                        mean_jerk=float(np.linalg.norm(np.diff(p, 3, axis=0), axis=1).mean() / 0.05**3),
                        ee_path=p.tolist() if init == 0 else None, grasp_step=40,
                    ))


def test_report_writes_tables_figures_html(tmp_path):
    results = tmp_path / "results.jsonl"
    make_results(results, np.random.default_rng(0))
    log = tmp_path / "grpo-binary" / "log.jsonl"
    log.parent.mkdir()
    log.write_text("".join(f'{{"update": {i}, "success_rate": {0.5 + i / 20}, "mean_jerk": {3 - i / 10}}}\n'
                           for i in range(10)))
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--logs", str(log), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    for needle in ("SmoothVLA Table 1", "SmoothVLA Table 2", "SmoothVLA Table 3", "RL4VLA", "↓", "Δ"):
        assert needle in md
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 4  # paths, jerk bars, success vs jerk, training curves
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "\\begin{tabular}" in (out / "report.tex").read_text()
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing to fetch


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(browser, html_path, png_path):
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={png_path.parent / ('profile-' + png_path.stem)}",
         "--window-size=1200,2400", f"--screenshot={png_path}", html_path.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    import matplotlib.image as mpimg
    return mpimg.imread(png_path)[..., :3]


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_html_report_renders_its_figures_in_chromium(tmp_path):
    results = tmp_path / "results.jsonl"
    make_results(results, np.random.default_rng(1))
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    html_path = out / "report.html"
    no_figures = tmp_path / "nofig.html"
    no_figures.write_text(re.sub(r"<figure>.*?</figure>", "", html_path.read_text(), flags=re.S))
    with_figs = _screenshot(_chromium(), html_path, tmp_path / "with.png")
    without = _screenshot(_chromium(), no_figures, tmp_path / "without.png")
    # Figures are drawn in colour; the tables are black on white. Count saturated pixels.
    def coloured(img):
        return int(((img.max(axis=2) - img.min(axis=2)) > 0.25).sum())
    assert coloured(with_figs) > 20 * max(1, coloured(without)), (coloured(with_figs), coloured(without))


def traced_results(path, rng):
    """Results through `episode_result`, as evaluation writes them: chunks of 8, the gripper
    closing at action 60, the object held from state 62; the path of init 0 recorded."""
    base = pick_place_path(0.05)
    n = len(base) - 1
    actions = np.zeros((n, 7))
    actions[60:, 6] = 1.0
    f = ResultsFile(path)
    expected = {}
    for policy, noise in [("sft", 2e-5), ("grpo-binary", 1e-4)]:
        for init in range(3):
            traj = Trajectory(ee_pos=jittery(base, noise, rng), actions=actions, control_dt=0.05,
                              success=init < 2, chunk_starts=np.arange(n) % 8 == 0,
                              is_grasping=np.arange(n + 1) >= 62, task_id="tabletop-object/t-v1",
                              init_id=init, seed=0)
            r = episode_result(traj, PolicyRef(policy, "-"), "none", keep_path=init == 0)
            f.append(r)
            expected.setdefault(policy, []).append(r)
    return expected


def test_report_shows_where_the_jerk_comes_from(tmp_path):
    results = tmp_path / "results.jsonl"
    expected = traced_results(results, np.random.default_rng(2))
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Where the jerk comes from" in md
    for policy, rs in expected.items():
        ok = [r for r in rs if r.success]
        share = 100 * np.mean([r.jerk_boundary_share for r in ok])
        event = np.mean([r.jerk_event for r in rs])
        rows = {cols[2]: cols for cols in ([c.strip() for c in line.strip("|").split("|")]
                                           for line in md.splitlines()
                                           if line.startswith(f"| {policy} ") and "%" not in line)
                if len(cols) == 10}
        assert rows["successes"][4] == f"{share:.1f}"  # boundary jerk %
        assert rows["all"][9] == f"{event:.3f}"  # event jerk
    assert (out / "figures" / "jerk_over_time.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4  # + jerk over time
    assert "Jerk along the path" in html


def test_report_tables_leave_out_older_results(tmp_path):
    results = tmp_path / "results.jsonl"
    make_results(results, np.random.default_rng(0))
    cells = summarize(read_results([results]))
    assert jerk_source_table(cells)[1] == []


def test_jerk_source_table_by_hand():
    split = {k: float("nan") for k in SPLIT_KEYS}
    split.update(jerk_boundary_windows=0.24, jerk_boundary_share=0.38, jerk_boundary=30.0,
                 jerk_inside=15.0, jerk_event_windows=0.02, jerk_event_share=0.05,
                 jerk_event=50.0)
    cell = Cell(policy="sft", suite="s", perturbation="none", episodes=4, success=0.5,
                success_ci=(0.1, 0.9), success_seed_std=0.0, grasp=1.0, cont_grasp=1.0,
                mean_jerk=20.0, mean_jerk_ci=(19.0, 21.0), ldlj=-10.0, sparc=-3.0, steps=100.0,
                chunk_jump=0.1, jerk_split=split, jerk_split_all={k: float("nan") for k in split})
    header, rows = jerk_source_table([cell])
    assert rows == [["sft", "s", "successes", "24.0", "38.0", 30.0, 15.0, "2.0", "5.0", 50.0]]
    assert header[3:5] == ["boundary windows %", "boundary jerk %"]


def _red_pixels(png: bytes) -> int:
    import io

    import matplotlib.image as mpimg
    img = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    red = np.array([0xC4, 0x4E, 0x52]) / 255
    return int((np.abs(img - red).max(axis=2) < 0.08).sum())


def test_jerk_over_time_marks_gripper_events():
    trace = list(np.abs(np.sin(np.arange(80) / 5)) * 10)
    plain = EpisodeResult(policy="sft", task_id="s/t", init_id=0, seed=0, jerk_trace=trace,
                          chunk_start_steps=list(range(0, 83, 8)), event_steps=[])
    with_events = EpisodeResult(**{**plain.__dict__, "event_steps": [20, 50]})
    assert _red_pixels(figures.jerk_over_time({"sft": with_events})) > \
        10 * max(1, _red_pixels(figures.jerk_over_time({"sft": plain})))


def test_report_counts_a_results_file_given_twice_once(tmp_path, caplog):
    results = tmp_path / "results.jsonl"
    make_results(results, np.random.default_rng(2))
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert main(["report", "--results", str(results), "--out", str(once)]) == 0
    with caplog.at_level("WARNING"):
        assert main(["report", "--results", str(results), str(results), "--out", str(twice)]) == 0
    assert "duplicate episode(s)" in caplog.text and "a file given twice" in caplog.text
    assert (once / "report.md").read_text() == (twice / "report.md").read_text()


def test_report_refuses_one_label_acted_two_ways(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, settings in ((a, {}), (b, {"execute_steps": 4})):
        ResultsFile(path).append(EpisodeResult(
            policy="sft", task_id="tabletop-object/pick-x-v1", suite="tabletop-object", init_id=0,
            seed=0, success=True, checkpoint="c0ffee", settings=settings))
    assert main(["report", "--results", str(a), str(b), "--out", str(tmp_path / "r")]) == 1
    assert "'sft'" in capsys.readouterr().err
