"""The report with recorded videos: the summary it opens with, the side-by-side view with a
jerk trace per policy, and the videos playable in headless Chromium."""

import base64
import re
import shutil
import subprocess

import pytest
import torch

from smoothvla.eval import ResultsFile, read_results
from smoothvla.eval.compare import paired
from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
from smoothvla.report.build import build_report
from smoothvla.report.headline import headline_table, headlines
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy

TASK = "fake-reach/point-mass-v1"


def factory(task_id, perturbation=None, **options):
    return make_point_mass(task_id, **options)


@pytest.fixture(scope="module")
def filmed(tmp_path_factory):
    """Three policies on the point mass, 4 init states, the first 2 filmed."""
    tmp = tmp_path_factory.mktemp("filmed")
    results = ResultsFile(tmp / "results.jsonl")
    plan = EvalPlan(task_ids=[TASK], init_ids=range(4), record_paths=0, videos=2)
    for label, seed in (("sft", 0), ("grpo-binary", 1), ("smoothvla-grpo", 2)):
        torch.manual_seed(seed)
        policy = GaussianChunkPolicy(chunk_size=4)
        policy.save(tmp / label)
        evaluate(policy, PolicyRef(label, str(tmp / label)), plan, results, workers=0,
                 env_factory=factory, progress=False)
    return tmp


def test_headline_numbers_by_hand():
    from smoothvla.eval import EpisodeResult

    def row(policy, init, success, jerk):
        return EpisodeResult(policy=policy, task_id="s/t", init_id=init, seed=0,
                             success=success, mean_jerk=jerk)

    results = [row("sft", 0, True, 10.0), row("sft", 1, True, 20.0), row("sft", 2, False, 5.0),
               row("x", 0, True, 5.0), row("x", 1, True, 10.0), row("x", 2, True, 1.0)]
    (ref, x) = headlines(results, ["sft", "x"])
    assert ref.versus is None and x.versus is not None
    assert (x.success, x.versus.only_a, x.versus.only_b) == (1.0, 0, 1)
    assert x.versus.jerk_change == pytest.approx(15 / 30 - 1)  # common successes: inits 0, 1
    header, rows = headline_table([ref, x], "sft")
    # jerk 5, 10, 1: mean 5.33, sd 4.509, t(0.975, 2) = 4.303: 5.33 -+ 4.303 * 4.509 / sqrt(3)
    assert rows[1][:4] == ["x", 3, "100.0 [44, 100]", "5.3 [-5.9, 16.5]"]
    assert rows[1][4:] == ["0 / 1", "1", "-50%", "0.5", 2]


def test_report_opens_with_the_summary_and_shows_the_videos_side_by_side(filmed):
    out = filmed / "report"
    files = build_report([filmed / "results.jsonl"], out)
    md = files.markdown.read_text()
    html = files.html.read_text()
    # the summary comes first, cites the papers and links down to the tables
    assert md.index("## Summary") < md.index("## Side by side") < md.index("## Mean jerk")
    for text in (md, html):
        assert "SmoothVLA (arXiv 2603.13925)" in text and "arXiv 2505.19789" in text
        assert "McNemar" in text and "Wilcoxon" in text
    assert '<a href="#side-by-side">' in html
    for anchor in re.findall(r'<a href="#([^"]+)">', html):
        assert f'id="{anchor}"' in html
    results = read_results([filmed / "results.jsonl"])
    c = paired([r for r in results if r.policy == "sft"],
               [r for r in results if r.policy == "grpo-binary"])
    assert f"{c.only_a} / {c.only_b}" in md
    # one view (init 0, the first start every policy filmed), the three policies in order
    block = html[html.index('class="sbs"'):]
    assert re.findall(r"<b>([^<]+)</b>", block) == ["sft", "grpo-binary", "smoothvla-grpo"]
    videos = re.findall(r'<video [^>]*src="data:video/mp4;base64,([^"]+)"', html)
    assert len(videos) == 3 and files.media_inline
    assert all(base64.b64decode(v)[4:8] == b"ftyp" for v in videos)
    assert len(re.findall(r'<svg class="trace"', html)) == 3
    assert len(re.findall(r'<polyline', html)) == 3
    assert sorted(p.name for p in files.media) == sorted(
        f"0_{p}.{ext}" for p in ("sft", "grpo-binary", "smoothvla-grpo") for ext in ("mp4", "webp"))
    assert "](media/0_sft.webp)" in md and (out / "figures" / "side_by_side_0.png").is_file()
    assert "http" not in html.replace("http-equiv", "")  # still self-contained


def test_report_links_the_videos_when_they_are_too_big_to_embed(filmed):
    files = build_report([filmed / "results.jsonl"], filmed / "linked", inline_media_mb=0.0)
    html = files.html.read_text()
    assert not files.media_inline and "data:video" not in html
    for src in re.findall(r'<video [^>]*src="([^"]+)"', html):
        assert (filmed / "linked" / src).is_file()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_side_by_side_videos_load_in_chromium(filmed, tmp_path):
    files = build_report([filmed / "results.jsonl"], tmp_path / "report")
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
         files.html.as_uri()],
        check=True, capture_output=True, timeout=120, text=True).stdout
    tags = re.findall(r"<video [^>]*>", dom)
    assert len(tags) == 3
    for tag in tags:  # the browser decoded each one's header: its duration is the episode's
        steps = int(re.search(r'data-steps="(\d+)"', tag).group(1))
        duration = re.search(r'data-duration="([0-9.]+)"', tag)
        assert duration is not None, "the video did not load in Chromium"
        assert float(duration.group(1)) == pytest.approx((steps + 1) / 20, abs=0.06)
