"""The study records videos during evaluation and its report plays them side by side."""

import re
from dataclasses import replace

import pytest

from smoothvla.rollout.fake_policy import save_tiny_vla
from smoothvla.study import Study, StudyConfig, study_sft, study_train


@pytest.mark.slow
def test_study_report_shows_the_policies_side_by_side(tmp_path):
    sft = study_sft()
    train = replace(study_train(), iterations=1, group_size=2, groups_per_iteration=1, max_steps=8)
    cfg = StudyConfig(
        name="tiny", out=str(tmp_path / "study"), suite="tabletop-object",
        tasks=("pick-ketchup-place-basket",), demos_per_task=2,
        sft=replace(sft, policy=replace(sft.policy, image_size=32)), train=train,
        sft_checkpoint=str(save_tiny_vla(tmp_path / "sft", chunk_size=4)), methods=("grpo-binary",),
        eval_init_states=2, perturbations=(), workers=1, envs_per_worker=2, videos=1)
    out = Study(cfg).run()
    html = open(out["report"]).read()
    assert html.index("Summary") < html.index("Side by side")
    block = html[html.index('class="sbs"'):]
    assert re.findall(r"<b>([^<]+)</b>", block) == ["sft", "grpo-binary"]
    assert len(re.findall(r'<video [^>]*src="data:video/mp4;base64,', html)) == 2
    videos = list((tmp_path / "study" / "results_videos").rglob("*.mp4"))
    assert len(videos) == 2  # 1 per policy x task x perturbation: init state 0 only
