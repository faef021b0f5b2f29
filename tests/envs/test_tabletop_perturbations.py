"""Each tabletop perturbation changes what it should, and nothing at strength 0."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import IDLE

from smoothvla.envs import make
from smoothvla.envs.tabletop import PerturbationSpec, list_perturbations
from smoothvla.envs.tabletop.perturbations import as_specs, rewrite_instruction

TASK = "tabletop-spatial/pick-bowl-left-of-plate-place-plate-v1"
SIZE = 48


def episode(perturbation=None, task=TASK, cameras=("agentview",), steps=0, seed=1, init_id=2):
    env = make(task, cameras=cameras, image_size=SIZE, perturbation=perturbation)
    obs, info = env.reset(seed=seed, init_id=init_id)
    for _ in range(steps):
        obs, _, _, _, info = env.step(IDLE)
    state = env.privileged_state()
    out = dict(obs=obs, info=info, state=state, plan=env.plan, task=env.task)
    env.close()
    return out


@pytest.fixture(scope="module")
def base():
    return episode()


def image_change(a, b) -> float:
    return float(np.abs(a["obs"]["rgb"]["agentview"].astype(int)
                        - b["obs"]["rgb"]["agentview"].astype(int)).mean())


def positions(ep) -> dict:
    return {n: o["pos"] for n, o in ep["state"]["objects"].items()}


def test_list_and_validation():
    kinds = list_perturbations()
    assert len(kinds) == 12 and "light" in kinds and "reposition" in kinds
    with pytest.raises(ValueError, match="unknown perturbation"):
        PerturbationSpec("earthquake", 0.5)
    with pytest.raises(ValueError, match="strength"):
        PerturbationSpec("light", 1.5)
    assert as_specs("light@0.25") == (PerturbationSpec("light", 0.25),)
    assert PerturbationSpec("camera", 0.5).name == "camera@0.5"
    with pytest.raises(ValueError, match="once"):
        as_specs(["light@0.2", "light@0.4"])


@pytest.mark.parametrize("kind", list_perturbations())
def test_strength_zero_changes_nothing(kind, base):
    ep = episode(PerturbationSpec(kind, 0.0, seed=5))
    assert ep["obs"]["instruction"] == base["obs"]["instruction"]
    assert image_change(ep, base) == 0.0
    assert positions(ep).keys() == positions(base).keys()


def test_language_rewrites_instruction_only(base):
    ep = episode(PerturbationSpec("language", 1.0, seed=0))
    assert ep["obs"]["instruction"] != base["obs"]["instruction"]
    assert ep["task"].instruction == ep["obs"]["instruction"]
    assert "black bowl" in ep["obs"]["instruction"] and "plate" in ep["obs"]["instruction"]
    assert image_change(ep, base) == 0.0
    rng = np.random.default_rng(0)
    texts = {rewrite_instruction("pick up the bowl and place it on the plate", 0.6, rng)
             for _ in range(20)}
    assert len(texts) > 5


@pytest.mark.parametrize("kind", ["light", "table_texture", "background", "camera",
                                  "image_noise"])
def test_visual_perturbations_change_images_not_state(kind, base):
    weak = episode(PerturbationSpec(kind, 0.3, seed=0))
    strong = episode(PerturbationSpec(kind, 1.0, seed=0))
    assert image_change(strong, base) > 3.0
    assert image_change(weak, base) > 0.0
    for name, pos in positions(base).items():
        np.testing.assert_allclose(positions(strong)[name], pos, atol=1e-9)
    assert strong["obs"]["instruction"] == base["obs"]["instruction"]


def test_camera_perturbation_leaves_wrist_camera(base):
    a = episode(cameras=("eye_in_hand",))
    b = episode(PerturbationSpec("camera", 1.0), cameras=("eye_in_hand",))
    np.testing.assert_array_equal(a["obs"]["rgb"]["eye_in_hand"], b["obs"]["rgb"]["eye_in_hand"])


def test_visual_perturbations_depend_on_reset_seed():
    a = episode(PerturbationSpec("light", 1.0), seed=1)
    b = episode(PerturbationSpec("light", 1.0), seed=2)
    assert image_change(a, b) > 0.5


def test_robot_init_moves_joints(base):
    ep = episode(PerturbationSpec("robot_init", 1.0, seed=0), cameras=())
    delta = np.abs(ep["info"]["joint_pos"] - base["info"]["joint_pos"])
    assert 0.02 < delta.max() <= 0.36


def test_layout_moves_objects_keeping_spacing(base):
    ep = episode(PerturbationSpec("layout", 1.0, seed=0), cameras=())
    moved = [np.linalg.norm(ep_pos[:2] - positions(base)[n][:2])
             for n, ep_pos in positions(ep).items()]
    assert max(moved) > 0.01 and max(moved) < 0.08 * np.sqrt(2) + 0.03 * np.sqrt(2) + 1e-6
    # Still left of the plate: the shared shift keeps spatial relations.
    s = positions(ep)
    assert s["bowl_1"][1] > s["plate"][1] > s["bowl_2"][1]


def test_unseen_object_swaps_the_task_object(base):
    ep = episode(PerturbationSpec("unseen_object", 0.2, seed=0), cameras=())
    new = ep["plan"][0]["object"]
    assert new != "bowl_1" and new in ep["state"]["objects"]
    assert "bowl_1" not in ep["state"]["objects"] and "bowl_2" in ep["state"]["objects"]
    display = new.replace("_", " ")
    assert "black bowl" not in ep["obs"]["instruction"]
    assert ep["state"]["objects"][new]["graspable"]
    assert display.split()[-1] in ep["obs"]["instruction"]


def test_unseen_receptacle_renames_target(base):
    ep = episode(PerturbationSpec("unseen_receptacle", 1.0, seed=0), cameras=())
    target = ep["plan"][0]["target"]
    assert target != "plate" and target in ep["obs"]["instruction"]
    assert "plate" not in ep["obs"]["instruction"]
    assert "plate" not in ep["state"]["objects"]


def test_distractors_add_objects(base):
    ep = episode(PerturbationSpec("distractors", 1.0, seed=0), cameras=())
    extra = set(ep["state"]["objects"]) - set(base["state"]["objects"])
    assert len(extra) == 4
    assert ep["plan"] == base["plan"]
    for name, pos in positions(base).items():  # the task's own layout is kept
        np.testing.assert_allclose(positions(ep)[name][:2], pos[:2], atol=2e-3)


def test_reposition_moves_the_target_mid_episode():
    steps = 21
    plain = episode(steps=steps, cameras=())
    moved = episode(PerturbationSpec("reposition", 1.0, seed=0), steps=steps, cameras=())
    early = episode(PerturbationSpec("reposition", 1.0, seed=0), steps=19, cameras=())
    d = np.linalg.norm(moved["state"]["objects"]["bowl_1"]["pos"][:2]
                       - plain["state"]["objects"]["bowl_1"]["pos"][:2])
    assert d == pytest.approx(0.12, abs=0.01)
    d_early = np.linalg.norm(early["state"]["objects"]["bowl_1"]["pos"][:2]
                             - plain["state"]["objects"]["bowl_1"]["pos"][:2])
    assert d_early < 1e-3


def test_perturbed_env_still_succeeds_by_teleport(teleport):
    specs = [PerturbationSpec("unseen_object", 1.0), PerturbationSpec("unseen_receptacle", 1.0),
             PerturbationSpec("distractors", 0.5)]
    env = make("tabletop-long/put-bowl-on-plate-and-cube-in-basket-v1", cameras=(),
               perturbation=specs)
    env.reset(seed=0, init_id=3)
    assert not env.step(IDLE)[4]["success"]
    teleport(env)
    info = env.step(IDLE)[4]
    assert info["success"]
    env.close()
