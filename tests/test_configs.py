"""Every committed config loads into its verb's Config (configs/sft/*.toml: `smoothvla sft`,
configs/train/*.toml: `smoothvla train`, configs/study-*.toml: the study of `smoothvla demo
--config`), every recipe script parses, and every SFT stage runs a few steps on a tiny
policy, the flow-head chain stage after stage as configs/sft-tabletop-object-flow.sh runs it."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothvla.cli import main, parse
from smoothvla.data.hdf5 import Demo, DemoWriter
from smoothvla.policies import load_policy

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VERB_OF_FOLDER = {"sft": "sft", "train": "train"}
TINY_POLICY = ["--policy.vision-encoder", "tiny", "--policy.text-encoder", "hash",
               "--policy.image-size", "32", "--policy.d-model", "32", "--policy.n-layers", "1",
               "--policy.n-heads", "2", "--policy.ff-dim", "64", "--policy.chunk-size", "4"]
"""Flags that shrink any SFT config's new policy to a tiny one (as tests/algorithms/test_sft.py),
with `TINY_HEAD`'s flags for its head."""
TINY_HEAD = {"token": ["--policy.token.bins", "16"], "dct": ["--policy.dct.bins", "16"],
             "flow": ["--policy.flow.layers", "1"]}


def tiny_flags(config: str) -> list[str]:
    """TINY_POLICY and the tiny flags of the head that configs/sft/CONFIG.toml trains."""
    policy = load(CONFIGS / "sft" / f"{config}.toml").policy
    aux = ["--policy.aux-token.bins", "16"] if policy.aux_token.enabled else []
    return [*TINY_POLICY, *TINY_HEAD[policy.head], *aux]


def all_tomls() -> list[Path]:
    return sorted(CONFIGS.rglob("*.toml"))


def load(path: Path):
    """The Config a committed TOML stands for, built and checked as the CLI does."""
    rel = path.relative_to(CONFIGS)
    if len(rel.parts) == 1 and rel.name.startswith("study-"):
        from smoothvla.study import StudyConfig

        return StudyConfig.from_toml(path)
    if len(rel.parts) != 2 or rel.parts[0] not in VERB_OF_FOLDER:
        raise AssertionError(f"configs/{rel}: no verb reads this folder; put SFT configs in "
                             "configs/sft/, RL ones in configs/train/, studies at configs/study-*.toml")
    verb = VERB_OF_FOLDER[rel.parts[0]]
    module = __import__(f"smoothvla.commands.{verb}", fromlist=["Config"])
    return parse(verb, module.Config, ["--config", str(path)])


def test_there_are_configs_of_every_kind():
    names = {p.relative_to(CONFIGS).as_posix() for p in all_tomls()}
    assert "sft/tabletop-object-token.toml" in names and "study-cpu.toml" in names
    assert any(n.startswith("train/") for n in names)


@pytest.mark.parametrize("path", all_tomls(), ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_config_loads_into_its_verbs_config(path, tmp_path, monkeypatch):
    import tomllib

    # a study checks that its SFT checkpoint exists: an empty stand-in where the recipe puts it
    monkeypatch.chdir(tmp_path)
    checkpoint = tomllib.loads(path.read_text()).get("sft_checkpoint", "")
    if checkpoint.startswith("runs/"):
        (tmp_path / checkpoint).mkdir(parents=True)
        (tmp_path / checkpoint / "config.json").write_text("{}")
    cfg = load(path)
    if path.parent.name == "sft":
        assert cfg.data and all(d.startswith("runs/") for d in cfg.data)
        assert cfg.run_dir.startswith("runs/")


@pytest.mark.parametrize("script", sorted(CONFIGS.glob("*.sh")), ids=lambda p: p.name)
def test_every_recipe_script_parses_and_names_existing_configs(script):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    import re

    text = script.read_text()
    for name in re.findall(r"configs/(?:sft|train)/[a-z0-9][a-z0-9.-]*\.toml", text):
        assert (CONFIGS.parent / name).is_file(), (script.name, name)
    # every stage goes through a committed config: no `smoothvla sft`/`train` without one
    for line in text.splitlines():
        if re.search(r"^\s*smoothvla (sft|train) ", line):
            assert "--config" in line, (script.name, line)


# --- every SFT stage, a few steps on a tiny policy ----------------------------------------
def write_demos(path: Path, n_demos: int = 3, steps: int = 12, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    with DemoWriter(path) as writer:
        for i in range(n_demos):
            t = np.arange(steps)[:, None] / steps
            actions = np.concatenate([np.sin(3 * t + np.arange(6)) * 0.5, -np.ones((steps, 1))], 1)
            obs = {"agentview_rgb": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                   "eye_in_hand_rgb": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                   "ee_pos": np.cumsum(actions[:, :3], 0) * 0.01, "ee_ori": np.zeros((steps, 3)),
                   "gripper_states": np.full((steps, 2), 0.04), "joint_states": np.zeros((steps, 7))}
            writer.add(Demo(actions=actions, obs=obs, attrs={
                "instruction": ("push left", "push right")[i % 2], "task_id": "nosuch-suite/t-v1",
                "init_id": i, "seed": i}))
    return path


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return write_demos(tmp_path_factory.mktemp("data") / "demos.hdf5")


def sft_stage(config: str, run_dir: Path, demos: Path, *flags: str, steps: int = 2) -> Path:
    """`smoothvla sft --config configs/sft/CONFIG.toml` with a tiny budget; its last checkpoint."""
    args = ["sft", "--config", str(CONFIGS / "sft" / f"{config}.toml"), "--data", str(demos),
            "--run-dir", str(run_dir), "--feature-cache-dir", str(run_dir.parent / "features"),
            "--steps", str(steps), "--batch-size", "8", "--checkpoint-every", "2",
            "--device", "cpu", "--no-progress", "--no-tensorboard", *flags]
    assert main(args) == 0
    return run_dir / "checkpoints" / f"step_{steps:07d}"


STANDALONE = ["demo-token", "demo-token-history", "demo-dct", "demo-token-smooth10",
              "tabletop-object-token", "tabletop-object-token-gpu", "libero-object-token",
              "libero-spatial-token"]


@pytest.mark.parametrize("config", STANDALONE)
def test_standalone_sft_configs_run_on_a_tiny_policy(config, demos, tmp_path):
    policy = load_policy(sft_stage(config, tmp_path / "run", demos, *tiny_flags(config)))
    expected = load(CONFIGS / "sft" / f"{config}.toml").policy
    assert policy.cfg.head == expected.head and policy.cfg.prev_actions == expected.prev_actions


def test_flow_recipe_runs_stage_after_stage_on_a_tiny_policy(demos, tmp_path, capsys):
    """The stages of configs/sft-tabletop-object-flow.sh, each from its committed config."""
    insulated = load_policy(sft_stage("tabletop-object-flow-insulated", tmp_path / "insulated",
                                      demos, *tiny_flags("tabletop-object-flow-insulated")))
    assert insulated.cfg.aux_token.insulate_backbone and insulated.aux_head is not None
    backbone = str(tmp_path / "insulated" / "checkpoints" / "step_0000002")
    # side stage: the auxiliary token head as a token policy, no training
    aux = load_policy(sft_stage("tabletop-object-flow-aux-token", tmp_path / "aux-token", demos,
                                "--init-from", backbone, steps=0))
    assert aux.cfg.head == "token" and aux.aux_head is None
    for k, v in insulated.aux_head.state_dict().items():
        assert torch.equal(aux.head.state_dict()[k], v), k
    # the probe: a fresh flow head (the config's 3 layers) trained alone on the frozen backbone
    probe_ckpt = sft_stage("tabletop-object-flow-probe", tmp_path / "probe", demos,
                           "--init-from", backbone)
    probe = load_policy(probe_ckpt)
    assert probe.cfg.head == "flow" and probe.cfg.flow.layers == 3 and probe.aux_head is None
    assert probe.cfg.d_model == 32  # the rest of the architecture is the checkpoint's
    for k, v in insulated.state_dict().items():
        if not k.startswith(("head.", "aux_head.")):
            assert torch.equal(probe.state_dict()[k], v), k
    # three flow-only cycles, each from the previous checkpoint
    start = probe_ckpt
    for n in (1, 2, 3):
        start = sft_stage(f"tabletop-object-flow-cycle{n}", tmp_path / f"cycle{n}", demos,
                          "--init-from", str(start))
        cycle = load_policy(start)
        assert cycle.cfg.head == "flow" and cycle.cfg.flow.layers == 3
    moved = [k for k, v in cycle.state_dict().items()
             if not k.startswith("vision.trunk") and not torch.equal(v, probe.state_dict()[k])]
    assert any(not k.startswith("head.") for k in moved)  # end to end: the backbone trains too


@pytest.mark.parametrize("script", ["libero-object.sh", "libero-spatial.sh",
                                    "libero-object-pilot.sh"])
def test_libero_recipe_commands_parse_into_their_verbs_configs(script, tmp_path, monkeypatch):
    """Every `smoothvla VERB` line of the LIBERO recipes, variables filled in, is a valid
    command line of its verb (the flags exist and take these values). The demonstrations
    start from sampled layouts, none of the official init states the evaluation uses."""
    import importlib
    import shlex

    monkeypatch.chdir(tmp_path)  # the study checks its SFT checkpoint: a stand-in
    pilot = script == "libero-object-pilot.sh"
    sft = tmp_path / f"runs/x/sft/checkpoints/step_000{1000 if pilot else 2000}"
    sft.mkdir(parents=True)
    (sft / "config.json").write_text("{}")
    text = (CONFIGS / script).read_text().replace("\\\n", " ")
    values = {"$out": "runs/x", "$workers": "2", "$sft": str(sft)}
    verbs = []
    for line in text.splitlines():
        line = line.strip().split("|| ", 1)[-1]
        if not line.startswith("smoothvla "):
            continue
        words = []
        for word in shlex.split(line)[1:]:
            if word == "${tasks[@]}":
                word = "libero-object/a"
            for name, value in values.items():
                word = word.replace(name, value)
            words.append(str(CONFIGS.parent / word) if word.startswith("configs/") else word)
        verb = words[0]
        cfg = parse(verb, importlib.import_module(f"smoothvla.commands.{verb}").Config, words[1:])
        verbs.append(verb)
        if verb == "collect":
            assert cfg.episodes_per_task == (20 if pilot else 50) and cfg.resume
            assert cfg.image_size == 128 and cfg.cameras == ("agentview", "eye_in_hand")
            assert cfg.suite == script.removesuffix(".sh").removesuffix("-pilot")
            assert cfg.init_offset == 50  # 50 + i: past the official init states 0-49
        if verb == "sft":
            assert cfg.resume and cfg.policy.image_size == 128 and cfg.policy.head == "token"
            assert cfg.data == ("runs/x/demos.hdf5",) and cfg.run_dir == "runs/x/sft"
        if verb == "eval":
            assert cfg.num_init_states == 50 and not cfg.sample and cfg.checkpoints == (
                f"sft={sft}",)
        if verb == "demo":
            assert cfg.study.tasks == ("libero-object/a",) and cfg.study.out == "runs/x/study"
            assert cfg.study.sft_checkpoint == str(sft) and cfg.study.seeds == (0, 1)
    expected = ["collect", "sft", "eval"] + (["demo"] if script == "libero-object.sh" else [])
    assert verbs == expected
