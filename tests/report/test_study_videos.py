"""The study records videos during evaluation and its report plays them side by side."""

import re

import numpy as np
import pytest

from smoothvla.study import Study, StudyConfig


def _tiny_sft(path):
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

    rng = np.random.default_rng(0)
    CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32,
                         n_layers=1, n_heads=2, ff_dim=64, chunk_size=4, n_bins=16),
               Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)), rng.normal(size=(50, 8)))
               ).save(path)
    return path


@pytest.mark.slow
def test_study_report_shows_the_policies_side_by_side(tmp_path):
    cfg = StudyConfig(
        name="tiny", out=str(tmp_path / "study"), suite="tabletop-object",
        tasks=("pick-ketchup-place-basket",), demos_per_task=2, image_size=32,
        sft_checkpoint=str(_tiny_sft(tmp_path / "sft")), methods=("grpo-binary",),
        rl_iterations=1, group_size=2, groups_per_iteration=1, rl_max_steps=8,
        eval_init_states=2, perturbations=(), workers=1, envs_per_worker=2, videos=1)
    out = Study(cfg).run()
    html = open(out["report"]).read()
    assert html.index("Summary") < html.index("Side by side")
    block = html[html.index('class="sbs"'):]
    assert re.findall(r"<b>([^<]+)</b>", block) == ["sft", "grpo-binary"]
    assert len(re.findall(r'<video [^>]*src="data:video/mp4;base64,', html)) == 2
    videos = list((tmp_path / "study" / "results_videos").rglob("*.mp4"))
    assert len(videos) == 2  # 1 per policy x task x perturbation: init state 0 only
