"""SFT: chunk targets, the smoothness term and schedule by hand; overfitting one batch; the
feature cache; resume after a kill reproduces the uninterrupted run; the CLI verb."""

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from smoothvla.algorithms import sft
from smoothvla.cli import main as cli_main
from smoothvla.data.hdf5 import Demo, DemoWriter
from smoothvla.policies import CompactVLA, DemoBatch, Normalizer, VLAConfig, load_policy
from smoothvla.policies.head_configs import (DCTHeadConfig, FlowHeadConfig, GaussianHeadConfig,
                                             TokenHeadConfig)

torch.set_num_threads(1)

TINY = VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32,
                 n_layers=1, n_heads=2, ff_dim=64, flow=FlowHeadConfig(layers=1, steps=4),
                 chunk_size=4)
TINY_HEADS = {"token": TokenHeadConfig(bins=16), "dct": DCTHeadConfig(bins=16),
              "flow": FlowHeadConfig(layers=1, steps=4), "gaussian": GaussianHeadConfig()}


def tiny(head: str = "flow", **settings) -> VLAConfig:
    """TINY with `head` at its tiny settings (16 bins, a 1-layer flow expert of 4 steps),
    `settings` over them."""
    return TINY.with_head(head, replace(TINY_HEADS[head], **settings))


def write_demos(path, n_demos=3, steps=12, size=32, task_id="nosuch-suite/task-v1"):
    """Synthetic LIBERO-layout demos: actions are a smooth function of time and the instruction."""
    rng = np.random.default_rng(0)
    with DemoWriter(path) as writer:
        for i in range(n_demos):
            t = np.arange(steps)[:, None] / steps
            sign = 1.0 if i % 2 == 0 else -1.0
            actions = np.concatenate([sign * np.sin(3 * t + np.arange(6)), -np.ones((steps, 1))], 1) * 0.5
            obs = {
                "agentview_rgb": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                "eye_in_hand_rgb": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                "ee_pos": np.cumsum(actions[:, :3], 0) * 0.01,
                "ee_ori": np.zeros((steps, 3)), "gripper_states": np.full((steps, 2), 0.04),
                "joint_states": np.zeros((steps, 7)),
            }
            writer.add(Demo(actions=actions, obs=obs, attrs={
                "instruction": ("push left", "push right")[i % 2], "task_id": task_id,
                "init_id": i, "seed": i}))
    return path


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return write_demos(tmp_path_factory.mktemp("data") / "demos.hdf5")


def config(tmp_path, demos, **kw):
    base = dict(data=(str(demos),), run_dir=str(tmp_path / "run"), policy=TINY, steps=6,
                batch_size=8, lr=3e-3, warmup_steps=2, log_every=1, checkpoint_every=3,
                eval_every=0, progress=False, tensorboard=False)
    return sft.SFTConfig(**{**base, **kw})


def test_chunk_targets_pad_with_last_action_and_mask():
    actions = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    frames = sft.Frames(actions, np.zeros((5, 8)), np.array([3, 3, 3, 5, 5]), np.zeros(5, int),
                        ["x"], [{}, {}])
    a, mask = sft.chunk_targets(frames, np.array([0, 1, 3, 4]), 3)
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0]]
    assert a[1, :, 0].tolist() == [7, 14, 14]  # frames 1, 2 then frame 2 repeated
    assert a[3, :, 0].tolist() == [28, 28, 28]  # never crosses into another episode


def test_previous_actions_by_hand():
    actions = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)  # row t starts with 7 t
    frames = sft.Frames(actions, np.zeros((5, 8)), np.array([3, 3, 3, 5, 5]), np.zeros(5, int),
                        ["x"], [{}, {}])
    prev = sft.previous_actions(frames, np.array([0, 1, 2, 3, 4]), 2)
    assert prev.shape == (5, 2, 7) and prev.dtype == np.float32
    # Oldest first; zeros before the episode start, never the previous episode's actions.
    assert prev[:, :, 0].tolist() == [[0, 0], [0, 0], [0, 7], [0, 0], [0, 21]]
    assert prev[2, 1].tolist() == actions[1].tolist() and not prev[1, 0].any()
    assert sft.previous_actions(frames, np.array([2]), 3)[0, :, 0].tolist() == [0, 0, 7]


def test_batches_carry_the_previous_actions_of_the_same_demo(tmp_path, demos):
    cfg = config(tmp_path, demos, policy=replace(TINY, prev_actions=3), cache_features=False)
    policy = CompactVLA(cfg.policy)
    frames = sft.load_frames(cfg.data, TINY.cameras, with_images=True)
    policy.set_normalizer(Normalizer.from_arrays(frames.actions, frames.proprio))
    batch = sft.make_batch(policy, frames, policy.text.encode(frames.instructions), cfg, step=1)
    idx = np.sort(np.random.default_rng([cfg.seed, 1]).integers(0, len(frames.actions), cfg.batch_size))
    for row, i in zip(batch.features["prev_actions"].numpy(), idx):
        t = i % 12  # the fixture's demos have 12 steps each
        for j in range(3):
            back = 3 - j
            expected = frames.actions[i - back] if t >= back else np.zeros(7)
            assert np.array_equal(row[j], expected), (i, j)
    loss = policy.sft_loss(batch).loss
    assert torch.isfinite(loss)


def test_dct_head_bins_are_fitted_by_sft_with_history_and_smoothness(tmp_path, demos):
    cfg = config(tmp_path, demos, steps=3, checkpoint_every=3, smooth_weight=0.1,
                 policy=replace(tiny("dct", coefficients=2), prev_actions=2))
    final = sft.train(cfg)
    policy = load_policy(final)
    assert not policy.action_head_needs_fit() and policy.cfg.prev_actions == 2
    frames = sft.load_frames(cfg.data, TINY.cameras, with_images=False)
    chunks = sft.chunk_targets(frames, np.arange(len(frames.actions)), 4)[0]
    fresh = CompactVLA(cfg.policy, policy.normalizer)
    fresh.fit_action_head(chunks)
    assert torch.equal(policy.head.coef_low, fresh.head.coef_low)
    assert torch.equal(policy.head.coef_high, fresh.head.coef_high)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["smooth"]) and np.isfinite(r["total_loss"]) for r in records)
    # The smoothness term reaches the DCT head through the expected chunk.
    batch = sft.make_batch(policy, sft.load_frames(cfg.data, TINY.cameras, with_images=True),
                           policy.text.encode(frames.instructions), replace(cfg, cache_features=False), 0)
    predicted = policy.sft_loss(batch).predicted
    sft.chunk_jerk(predicted, batch.mask).backward()
    assert policy.head.coef_out.weight.grad.abs().sum() > 0


def test_sft_evaluation_envs_carry_the_action_history(monkeypatch):
    from types import SimpleNamespace

    policy = CompactVLA(replace(TINY, prev_actions=2),
                        Normalizer.from_arrays(np.zeros((4, 7)) + 0.1, np.zeros((4, 8))))
    seen, chunks = [], []
    original = policy.act

    def act(obs, **kw):
        seen.append(obs[0])
        chunks.append(original(obs, **kw))
        return chunks[-1]

    monkeypatch.setattr(policy, "act", act)
    episodes = [{"task_id": "tabletop-object/pick-ketchup-place-basket-v1", "init_id": 0, "seed": 0}]
    cfg = sft.SFTConfig(eval_episodes=1, eval_max_steps=2 * TINY.chunk_size)
    sft.evaluate(policy, SimpleNamespace(episodes=episodes), cfg)
    assert len(seen) == 2 and not seen[0]["prev_actions"].any()
    executed = np.clip(chunks[0].actions[0, -1].numpy(), -1, 1)
    assert np.allclose(seen[1]["prev_actions"][-1], executed, atol=1e-6)


def test_chunk_jerk_by_hand():
    # Position deltas 0, 0, 0, 1 (x only): positions 0, 0, 0, 1 -> one jerk value of 1.
    a = torch.zeros(1, 4, 7)
    a[0, 3, 0] = 1.0
    assert sft.chunk_jerk(a, torch.ones(1, 4)).item() == pytest.approx(1.0)
    # Constant velocity has zero jerk; a padded last step removes the only jerk term.
    assert sft.chunk_jerk(torch.ones(1, 5, 7), torch.ones(1, 5)).item() == 0.0
    assert sft.chunk_jerk(a, torch.tensor([[1.0, 1, 1, 0]])).item() == 0.0
    with pytest.raises(ValueError, match="chunk_size >= 4"):
        sft.chunk_jerk(torch.zeros(1, 3, 7), torch.ones(1, 3))


def test_lr_schedule_by_hand(tmp_path, demos):
    f = sft.lr_lambda(config(tmp_path, demos, steps=12, warmup_steps=2, min_lr_ratio=0.1))
    assert [f(0), f(1)] == pytest.approx([0.5, 1.0])
    assert f(2) == pytest.approx(1.0)
    assert f(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(12) == pytest.approx(0.1)


@pytest.mark.parametrize("head,metric,factor", [("token", "loss", 4), ("gaussian", "mse", 10),
                                                ("flow", "loss", 4), ("dct", "loss", 4)])
def test_overfits_one_batch(head, metric, factor):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.8, 0.8, (6, 4, 7)).astype(np.float32)
    policy = CompactVLA(tiny(head),
                        Normalizer.from_arrays(actions.reshape(-1, 7), rng.normal(size=(24, 8))))
    if policy.action_head_needs_fit():
        policy.fit_action_head(actions)
    obs = [{"rgb": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    for c in ("agentview", "eye_in_hand")},
            "proprio": rng.normal(size=8).astype(np.float32), "instruction": f"task {i}"}
           for i in range(6)]
    batch = DemoBatch(torch.as_tensor(actions), features=policy.encode(obs))
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-3)

    def measure():
        torch.manual_seed(123)  # the flow loss draws tau and noise: use the same draws
        with torch.no_grad():
            return policy.sft_loss(batch).metrics[metric]

    first = measure()
    for step in range(150):
        torch.manual_seed(step)
        loss = policy.sft_loss(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert measure() < first / factor


def test_train_writes_checkpoints_logs_and_cache(tmp_path, demos, capsys):
    cfg = config(tmp_path, demos, steps=4, checkpoint_every=2, eval_every=2, smooth_weight=0.1)
    final = sft.train(cfg)
    run = tmp_path / "run"
    assert final == run / "checkpoints" / "step_0000004"
    assert (run / "latest").read_text() == "step_0000004"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]
    assert json.loads((final / "sft_config.json").read_text())["steps"] == 4
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r["total_loss"]) and "smooth" in r for r in records)
    assert "evaluation skipped" in capsys.readouterr().err  # the suite does not exist here
    policy = load_policy(final)
    assert policy.normalizer is not None and len(list((run / "features").glob("*.npy"))) == 1

    # A second run on the same file reads the cache instead of re-encoding.
    def refuse(*args, **kwargs):
        raise AssertionError("re-encoded images despite the cache")
    cfg2 = replace(cfg, run_dir=str(run), steps=5, resume=True)
    original = CompactVLA.encode_images
    CompactVLA.encode_images = refuse
    try:
        sft.train(cfg2)
    finally:
        CompactVLA.encode_images = original


def _weights(path):
    return {k: v for k, v in load_policy(path).state_dict().items()}


@pytest.mark.parametrize("head,augment", [("flow", False), ("token", True)])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, demos, monkeypatch, head, augment):
    policy_cfg = tiny(head)
    full = sft.train(config(tmp_path / "a", demos, policy=policy_cfg, augment=augment, aug_views=2))

    killed = config(tmp_path / "b", demos, policy=policy_cfg, augment=augment, aug_views=2)
    real_step = sft.train_step

    def dying_step(policy, optimizer, scheduler, batch, cfg, step):
        if step == 4:  # after the checkpoint at step 3, mid-way to the next one
            raise KeyboardInterrupt
        return real_step(policy, optimizer, scheduler, batch, cfg, step)

    monkeypatch.setattr(sft, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        sft.train(killed)
    monkeypatch.setattr(sft, "train_step", real_step)
    assert (tmp_path / "b" / "run" / "latest").read_text() == "step_0000003"
    resumed = sft.train(replace(killed, resume=True))

    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # step 4, logged by the killed run, dropped and redone


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path, demos):
    from smoothvla.errors import UserError

    first = sft.train(config(tmp_path, demos, steps=3))
    run = tmp_path / "run"
    log = (run / "log.jsonl").read_text()
    with pytest.raises(UserError, match=f"{run}.*--resume"):
        sft.train(config(tmp_path, demos, steps=3, lr=1e-3))
    assert (run / "log.jsonl").read_text() == log
    assert (run / "latest").read_text() == first.name


def test_a_second_writer_of_the_same_run_dir_is_refused(tmp_path, demos):
    from smoothvla.errors import UserError
    from smoothvla.io import lock_directory

    with lock_directory(tmp_path / "run", "sft run"):
        with pytest.raises(UserError, match="in use by another sft run"):
            sft.train(config(tmp_path, demos, steps=1))
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_a_run_killed_before_its_first_checkpoint_starts_over_cleanly(tmp_path, demos,
                                                                       monkeypatch, capsys):
    real_step = sft.train_step

    def dying_step(policy, optimizer, scheduler, batch, cfg, step):
        if step == 2:
            raise KeyboardInterrupt
        return real_step(policy, optimizer, scheduler, batch, cfg, step)

    monkeypatch.setattr(sft, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        sft.train(config(tmp_path, demos))
    monkeypatch.setattr(sft, "train_step", real_step)
    log = tmp_path / "run" / "log.jsonl"
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2]
    for resume in (False, True):  # no checkpoint: both start from step 0 with a fresh log
        sft.train(config(tmp_path, demos, resume=resume))
        assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
        if not resume:
            shutil.rmtree(tmp_path / "run" / "checkpoints")
            (tmp_path / "run" / "latest").unlink()
    assert "no checkpoint" in capsys.readouterr().err


def test_uncached_path_trains(tmp_path, demos):
    final = sft.train(config(tmp_path, demos, steps=2, cache_features=False, augment=True,
                             checkpoint_every=2))
    assert not (tmp_path / "run" / "features").exists()
    assert load_policy(final).chunk_size == 4


def test_bad_inputs(tmp_path, demos):
    with pytest.raises(ValueError, match="no demonstration files"):
        sft.train(config(tmp_path, demos, data=()))
    with pytest.raises(FileNotFoundError):
        sft.train(config(tmp_path, demos, data=(str(tmp_path / "missing.hdf5"),)))
    with pytest.raises(ValueError, match="steps and batch_size"):
        config(tmp_path, demos, steps=0)


def test_cli_verb(tmp_path, demos, capsys):
    code = cli_main(["sft", "--data", str(demos), "--run-dir", str(tmp_path / "cli"),
                     "--steps", "2", "--batch-size", "4", "--no-progress", "--no-tensorboard",
                     "--eval-every", "0", "--policy.vision-encoder", "tiny",
                     "--policy.text-encoder", "hash", "--policy.image-size", "32",
                     "--policy.d-model", "32", "--policy.n-layers", "1", "--policy.head", "gaussian"])
    assert code == 0
    assert "step_0000002" in capsys.readouterr().out
    assert cli_main(["sft", "--data", str(tmp_path / "nope.hdf5"), "--run-dir",
                     str(tmp_path / "x"), "--no-progress"]) == 1


def test_held_in_episodes_round_robin_over_tasks():
    eps = [{"task_id": t, "init_id": i} for t in ("a", "b") for i in range(3)] + [{"demo": "no id"}]
    picked = sft.held_in_episodes(eps, 4)
    assert [(e["task_id"], e["init_id"]) for e in picked] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


class _CountingEnv:
    """Stand-in env: succeeds after `succeed_after` steps; records the actions it executed."""

    max_steps, control_dt = 12, 0.05

    def __init__(self, succeed_after):
        self.succeed_after, self.executed = succeed_after, []

    def _obs(self):
        rng = np.random.default_rng(len(self.executed))
        return {"rgb": {c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                        for c in ("agentview", "eye_in_hand")},
                "proprio": np.zeros(8, np.float32), "instruction": "push left"}

    def _info(self, success):  # what a TaskEnv's info carries
        return {"ee_pos": np.full(3, 0.01 * self.t), "ee_quat": np.array([1.0, 0, 0, 0]),
                "joint_pos": np.zeros(7), "gripper": 0.0, "is_grasping": False,
                "success": success}

    def reset(self, seed=0, init_id=0):
        self.t = 0
        return self._obs(), self._info(False)

    def step(self, action, render=True):
        self.t += 1
        self.executed.append(np.asarray(action))
        success = self.t >= self.succeed_after
        return self._obs(), float(success), success, False, self._info(success)

    def close(self):
        pass


@pytest.mark.parametrize("execute, acts", [(0, 2), (1, 7), (3, 3)])
def test_evaluate_replans_after_execute_steps_and_reports_per_task(demos, monkeypatch,
                                                                   execute, acts):
    envs = {"suite/a-v1": _CountingEnv(7), "suite/b-v1": _CountingEnv(100)}
    policy = CompactVLA(TINY, Normalizer.from_arrays(np.zeros((4, 7)) + 0.1, np.zeros((4, 8))))
    calls = []
    original = policy.act
    monkeypatch.setattr(policy, "act", lambda obs, **kw: calls.append(1) or original(obs, **kw))
    frames = sft.load_frames((str(demos),), TINY.cameras, with_images=False)
    frames.episodes = [{"task_id": "suite/a-v1", "init_id": 0, "seed": 0},
                       {"task_id": "suite/b-v1", "init_id": 0, "seed": 0}]
    cfg = sft.SFTConfig(data=(str(demos),), policy=TINY, eval_episodes=2,
                        eval_execute_steps=execute)
    calls.clear()
    envs["suite/b-v1"].max_steps = 4  # task b: never succeeds, stops at the step limit
    # one env: the episodes run one after another, so the act calls add up
    out = sft.evaluate(policy, frames, cfg, num_envs=1,
                       env_factory=lambda task_id, **options: envs[task_id])
    assert out["eval_success"] == 0.5
    assert out["eval_success/a-v1"] == 1.0 and out["eval_success/b-v1"] == 0.0
    assert len(envs["suite/a-v1"].executed) == 7  # stops at success, mid-chunk
    # task a: 7 steps in chunks of m (k = 4 when execute = 0); task b: 4 steps (the limit)
    m = execute or TINY.chunk_size
    assert len(calls) == acts + -(-4 // m)


def test_eval_execute_steps_must_be_non_negative(demos):
    with pytest.raises(ValueError, match="eval_execute_steps"):
        sft.SFTConfig(data=(str(demos),), eval_execute_steps=-1)


def test_sft_evaluation_gives_the_numbers_of_smoothvla_eval(tmp_path):
    """SFT's evaluation runs its episodes as `smoothvla eval` does (one collector and pool):
    the same checkpoint, episodes and settings give the same success, length and jerk."""
    from types import SimpleNamespace

    from smoothvla.eval import read_results
    from smoothvla.rollout.fake_policy import save_tiny_vla

    task = "tabletop-object/pick-ketchup-place-basket-v1"
    ckpt = save_tiny_vla(tmp_path / "ckpt", chunk_size=4)
    episodes = [{"task_id": task, "init_id": i, "seed": 0} for i in (0, 1)]
    cfg = sft.SFTConfig(eval_episodes=2, eval_execute_steps=2, eval_max_steps=12)
    out = sft.evaluate(load_policy(ckpt), SimpleNamespace(episodes=episodes), cfg)
    results = tmp_path / "r.jsonl"
    assert cli_main(["eval", "--checkpoints", f"sft={ckpt}", "--tasks", task,
                     "--num-init-states", "2", "--workers", "0", "--max-steps", "12",
                     "--execution.scheme", "receding", "--execution.steps", "2",
                     "--out", str(results)]) == 0
    rows = read_results([results])
    assert out["eval_episodes"] == len(rows) == 2
    assert out["eval_success"] == np.mean([r.success for r in rows])
    assert out["eval_length"] == np.mean([r.steps for r in rows]) == 12
    assert np.isfinite(out["eval_mean_jerk"])
    assert out["eval_mean_jerk"] == np.mean([r.mean_jerk for r in rows])
