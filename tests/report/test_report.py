"""`smoothvla report` on fresh result files; the HTML checked in headless Chromium."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest

from smoothvla.cli import main
from smoothvla.eval import EpisodeResult, ResultsFile
from smoothvla.metrics.synthetic import jittery, pick_place_path


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
    for needle in ("seed 000 Table 1", "seed 000 Table 2", "seed 000 Table 3", "seed 003", "↓", "Δ"):
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
