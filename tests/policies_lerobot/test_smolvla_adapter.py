"""LeRobot's SmolVLA as a smoothvla policy, on tiny random SmolVLAs built offline
(tiny_smolvla.py): sampling, exact Flow-SDE log-probabilities, LeRobot-format checkpoints,
SFT, the value head, and `smoothvla sft` / `train` / `eval` end to end on the tabletop suite."""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("lerobot.policies.smolvla.modeling_smolvla")

from tiny_smolvla import observations, tiny_smolvla, write_demos  # noqa: E402

from smoothvla.errors import UserError  # noqa: E402
from smoothvla.policies import load_policy  # noqa: E402
from smoothvla.policies.base import DemoBatch  # noqa: E402
from smoothvla.policies.lerobot_smolvla import (LeRobotSmolVLA, guess_camera_map,  # noqa: E402
                                                is_lerobot_smolvla)
from smoothvla.policies.normalizer import MissingStatisticsError  # noqa: E402

TASK = "tabletop-goal/put-bowl-on-plate-v1"


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _trainable(policy):
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


def test_act_gives_chunks_in_env_units_and_greedy_is_deterministic(tmp_path):
    policy = tiny_smolvla(tmp_path)
    obs = observations(3)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert chunk.actions.shape == (3, 4, 7) and chunk.actions.abs().max() <= 1.0
    assert chunk.extras["flow_path"].shape == (3, 4, 4, 7)  # N + 1 = 4 points, k = 4
    assert chunk.extras["flow_pad_noise"].shape == (3, 4, 32 - 7)
    assert not chunk.extras["flow_given"].any()
    assert torch.isfinite(chunk.log_prob).all()
    # the last path point, unnormalized (std 0.5, mean 0) and clipped, is the chunk
    expected = (chunk.extras["flow_path"][:, -1] * 0.5).clamp(-1, 1)
    torch.testing.assert_close(chunk.actions, expected)
    greedy = policy.act(obs, sample=False)
    assert torch.equal(greedy.actions, policy.act(obs, sample=False).actions)
    assert torch.equal(greedy.log_prob, torch.zeros(3)) and greedy.extras == {}
    other = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other.actions, chunk.actions)


def test_sampled_and_recomputed_log_probs_agree_and_carry_gradients(tmp_path):
    policy = tiny_smolvla(tmp_path)
    obs = observations(3)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    terms = policy.log_prob_terms(obs, chunk)
    assert terms.shape == (3, 1 + 4 * 4 * 7)
    logp = policy.log_prob(obs, chunk)
    torch.testing.assert_close(terms.sum(-1), logp)
    torch.testing.assert_close(logp, chunk.log_prob, rtol=1e-6, atol=1e-4)
    # every Gaussian term agrees to 1e-5: the recomputation is the sampler's own density
    path, pad = chunk.extras["flow_path"], chunk.extras["flow_pad_noise"]
    with torch.no_grad():
        pad_masks, cache, _ = policy.prefix(policy.lerobot_batch(obs))
        for i in range(policy.num_steps):
            mean, std = policy.sde_step(pad_masks, cache, path[:, i], pad, i)
            by_hand = (-0.5 * ((path[:, i + 1] - mean) / std) ** 2 - math.log(std)
                       - 0.5 * math.log(2 * math.pi)).flatten(1)
            torch.testing.assert_close(terms[:, 1 + 28 * (i + 1): 1 + 28 * (i + 2)].detach(),
                                       by_hand, atol=1e-5, rtol=0)
    logp.sum().backward()
    expert = [p for n, p in policy.named_parameters() if "lm_expert" in n and p.requires_grad]
    assert expert and any(p.grad is not None and p.grad.abs().sum() > 0 for p in expert)


def test_one_step_log_prob_is_the_sum_of_gaussian_terms_by_hand(tmp_path):
    sigma = 0.7
    policy = tiny_smolvla(tmp_path, num_steps=1)
    policy.cfg.flow_sde_sigma = sigma
    obs = observations(2)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(3))
    x0, x1 = chunk.extras["flow_path"][:, 0], chunk.extras["flow_path"][:, 1]
    z_pad = chunk.extras["flow_pad_noise"]
    with torch.no_grad():
        batch = policy.lerobot_batch(obs)
        pad_masks, cache, _ = policy.prefix(batch)
        # SmolVLA's velocity at its time t = 1 (pure noise); smoothvla's u is its negative
        v = policy.inner.model.denoise_step(pad_masks, cache, torch.cat([x0, z_pad], -1),
                                            torch.ones(2))[..., :7]
    u = -v
    mean = x0 + 1.0 * (u - sigma ** 2 * (x0 - 0.0 * u) / 2.0)  # tau = 0, dt = 1
    std = sigma * 1.0

    def log_normal(x, m, s):
        return (-0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)

    by_hand = log_normal(x0, 0.0, 1.0) + log_normal(z_pad, 0.0, 1.0) + log_normal(x1, mean, std)
    torch.testing.assert_close(chunk.log_prob, by_hand, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(policy.log_prob(obs, chunk).detach(), by_hand, rtol=1e-6, atol=1e-4)


def test_saved_policy_loads_in_lerobot_unchanged_and_back_in_smoothvla(tmp_path):
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import (policy_action_to_transition,
                                              transition_to_policy_action)

    policy = tiny_smolvla(tmp_path, seed=5)
    policy.save(tmp_path / "ckpt")
    assert is_lerobot_smolvla(tmp_path / "ckpt")
    # LeRobot's own loaders, as a LeRobot user would call them
    lerobot_policy = SmolVLAPolicy.from_pretrained(str(tmp_path / "ckpt"))
    pre = PolicyProcessorPipeline.from_pretrained(str(tmp_path / "ckpt"),
                                                  config_filename="policy_preprocessor.json")
    post = PolicyProcessorPipeline.from_pretrained(
        str(tmp_path / "ckpt"), config_filename="policy_postprocessor.json",
        to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
    obs = observations(2)
    batch = {"observation.state": torch.as_tensor(np.stack([o["proprio"] for o in obs])),
             "observation.images.agentview": torch.as_tensor(
                 np.stack([o["rgb"]["agentview"] for o in obs])).permute(0, 3, 1, 2) / 255.0,
             "task": [o["instruction"] for o in obs]}
    noise = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(0))
    theirs = post(lerobot_policy.predict_action_chunk(pre(dict(batch)), noise=noise.clone()))
    ours = post(policy.inner.predict_action_chunk(policy.preprocessor(dict(batch)), noise=noise.clone()))
    torch.testing.assert_close(theirs, ours, rtol=0, atol=0)
    # and back through smoothvla's loader: the same greedy chunks and sampled log-probs
    again = load_policy(tmp_path / "ckpt")
    assert isinstance(again, LeRobotSmolVLA) and again.camera_map == {"agentview": "agentview"}
    torch.testing.assert_close(again.act(obs, sample=False).actions,
                               policy.act(obs, sample=False).actions, rtol=0, atol=0)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.log_prob(obs, chunk).detach(), chunk.log_prob,
                               rtol=1e-6, atol=1e-4)


def test_sft_loss_overfits_a_small_batch(tmp_path):
    policy = tiny_smolvla(tmp_path)
    obs = observations(4)
    rng = np.random.default_rng(0)
    target = torch.as_tensor(rng.uniform(-0.5, 0.5, (4, 4, 7)), dtype=torch.float32)
    mask = torch.ones(4, 4)
    mask[0, 2:] = 0.0
    batch = DemoBatch(target, mask, obs=obs)

    def fixed_loss():
        torch.manual_seed(0)  # the same flow times and noise each time
        with torch.no_grad():
            return float(policy.sft_loss(batch).loss)

    before = fixed_loss()
    policy.train()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for _ in range(20):
        torch.manual_seed(0)  # fixed flow times and noise: the batch can be memorized
        out = policy.sft_loss(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    policy.eval()
    after = fixed_loss()
    assert after < 0.2 * before, (before, after)  # measured: 1.36 -> 0.08


def test_value_head_attaches_and_round_trips(tmp_path):
    policy = tiny_smolvla(tmp_path)
    assert not policy.has_value_head
    with pytest.raises(UserError, match="value head"):
        policy.value(observations(2))
    policy.attach_value_head()
    values = policy.value(observations(2))
    assert values.shape == (2,) and values.requires_grad
    policy.save(tmp_path / "ckpt")
    again = LeRobotSmolVLA.load(tmp_path / "ckpt")
    assert again.has_value_head
    torch.testing.assert_close(again.value(observations(2)), values.detach())


def test_clear_errors(tmp_path):
    policy = tiny_smolvla(tmp_path, stats=False)
    with pytest.raises(MissingStatisticsError, match="statistics"):
        policy.act(observations(1), sample=False)
    tiny_smolvla(tmp_path).save(tmp_path / "ckpt")
    with pytest.raises(UserError, match="temperature"):
        load_policy(tmp_path / "ckpt", temperature=0.5)
    with pytest.raises(UserError, match="flow_sde_sigma"):
        load_policy(tmp_path / "ckpt", flow_sde_sigma=0.0)
    assert load_policy(tmp_path / "ckpt", flow_sde_sigma=0.2).cfg.flow_sde_sigma == 0.2
    assert guess_camera_map(["observation.images.image", "observation.images.wrist_image"]) == {
        "image": "agentview", "wrist_image": "eye_in_hand"}  # LeRobot's LIBERO names
    with pytest.raises(UserError, match="camera_map"):
        guess_camera_map(["observation.images.top"])
    (tmp_path / "ckpt" / "smoothvla_adapter.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        load_policy(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "smoothvla_adapter.json").unlink()  # a folder straight from LeRobot
    fewer = load_policy(tmp_path / "ckpt", flow_steps=2)
    assert fewer.num_steps == 2
    assert fewer.act(observations(1), sample=True).extras["flow_path"].shape[1] == 3


# -- the commands, end to end on the tabletop suite ------------------------------------------
def _other_robot_checkpoint(tmp_path):
    """A tiny SmolVLA for another robot (6-D state and actions, one camera named 'top'),
    without statistics for smoothvla: what lerobot/smolvla_base is to smoothvla."""
    from lerobot.configs.types import FeatureType, PolicyFeature

    policy = tiny_smolvla(tmp_path, stats=True)
    config = policy.inner.config
    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
                             "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))}
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (6,))}
    policy.inner.save_pretrained(str(tmp_path / "base"))
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    six = {"mean": torch.zeros(6), "std": torch.ones(6)}
    for pipeline in make_smolvla_pre_post_processors(config, {"observation.state": six,
                                                              "action": six}):
        pipeline.save_pretrained(str(tmp_path / "base"))
    return tmp_path / "base"


def test_sft_train_and_eval_commands_run_a_lerobot_smolvla(tmp_path, capsys):
    from smoothvla.cli import main

    base = _other_robot_checkpoint(tmp_path)
    with pytest.raises(UserError, match="7-D"):
        load_policy(base)  # another robot's SmolVLA: only SFT starts from it
    demos = write_demos(tmp_path / "demos.hdf5", TASK)
    run = tmp_path / "sft"
    assert main(["sft", "--data", str(demos), "--init-from", str(base), "--run-dir", str(run),
                 "--steps", "2", "--batch-size", "2", "--warmup-steps", "1", "--eval-every", "0",
                 "--checkpoint-every", "2", "--no-progress", "--no-tensorboard"]) == 0
    final = run / "checkpoints" / "step_0000002"
    meta = json.loads((final / "smoothvla_adapter.json").read_text())
    assert meta["config"]["camera_map"] == {"agentview": "agentview", "eye_in_hand": "eye_in_hand"}
    sft_policy = load_policy(final)
    assert sft_policy.missing_statistics() == []  # fitted from the demos
    stats = json.loads((final / "config.json").read_text())["output_features"]["action"]
    assert stats["shape"] == [7]

    out = tmp_path / "rl"
    train = ["train", "--policy", str(final), "--tasks", TASK, "--groups-per-iteration", "1",
             "--group-size", "2", "--max-steps", "4", "--workers", "0", "--envs-per-worker", "2",
             "--out-dir", str(out), "--grpo.lr", "1e-3", "--reward.name", "random",
             "--grpo.no-dynamic-sampling", "--overrides.flow-sde-sigma", "0.4"]
    assert main(train + ["--iterations", "1"]) == 0
    (line,) = (out / "log.jsonl").read_text().splitlines()
    assert json.loads(line)["rollout/episodes"] == 2
    first = _trainable(load_policy(out / "policy"))
    assert main(train + ["--iterations", "2", "--resume"]) == 0  # the trainer's checkpoint
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    trained = load_policy(out / "policy")
    assert any(not torch.equal(first[k], v) for k, v in _trainable(trained).items())
    assert trained.cfg.flow_sde_sigma == 0.4
    before, after = _trainable(sft_policy), _trainable(trained)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # one GRPO update
    frozen = {n: p for n, p in sft_policy.named_parameters() if not p.requires_grad}
    assert frozen and all(torch.equal(p, dict(trained.named_parameters())[n])
                          for n, p in frozen.items())  # SmolVLA's frozen VLM stays frozen

    results = tmp_path / "eval.jsonl"
    assert main(["eval", "--checkpoints", str(out / "policy"), "--tasks", TASK,
                 "--suite", "tabletop-goal", "--num-init-states", "1", "--max-steps", "4",
                 "--workers", "0", "--out", str(results)]) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["task_id"] == TASK


@pytest.mark.parametrize("algorithm,scheme", [("ppo", "chunk"), ("dpo", "chunk"),
                                              ("grpo", "prefix")])
def test_ppo_dpo_and_prefix_grpo_update_a_smolvla_through_the_contract(tmp_path, algorithm,
                                                                       scheme):
    from smoothvla.algorithms.trainer import TrainConfig, Trainer, make_algorithm
    from smoothvla.rewards import RewardConfig
    from smoothvla.rollout.collector import Collector
    from smoothvla.rollout.execution import ExecutionConfig
    from smoothvla.rollout.pool import InProcessPool

    policy = tiny_smolvla(tmp_path, cameras=("agentview",))
    start = _trainable(policy)
    cfg = TrainConfig(tasks=(TASK,), iterations=1, groups_per_iteration=1, group_size=2,
                      init_ids=(0,), out_dir=str(tmp_path / "rl"), algorithm=algorithm,
                      reward=RewardConfig(name="random"))
    with InProcessPool(2, env_options={"cameras": policy.cameras,
                                       "image_size": policy.image_size}) as pool:
        collector = Collector(policy, pool, max_steps=4, execution=ExecutionConfig(scheme=scheme))
        stats = Trainer(cfg, make_algorithm(policy, cfg), collector, echo=None).run()
    assert len(stats) == 1 and np.isfinite(stats[0]["loss"])
    assert policy.has_value_head == (algorithm == "ppo")  # PPO attached its critic
    after = _trainable(policy)
    assert any(not torch.equal(start[k], after[k]) for k in start)
    saved = LeRobotSmolVLA.load(tmp_path / "rl" / "policy")
    assert saved.has_value_head == (algorithm == "ppo")


def test_prefix_conditioning_keeps_the_given_actions_and_an_exact_density(tmp_path):
    policy = tiny_smolvla(tmp_path)
    obs = observations(2)
    prefix = np.full((2, 2, 7), np.nan, np.float32)
    prefix[0] = np.linspace(-0.4, 0.4, 14).reshape(2, 7)  # episode 1 has no plan yet
    for sample in (True, False):
        chunk = policy.act(obs, sample=sample, prefix=prefix,
                           generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(chunk.actions[0, :2], torch.as_tensor(prefix[0]),
                                   atol=1e-5, rtol=0)
    chunk = policy.act(obs, sample=True, prefix=prefix, generator=torch.Generator().manual_seed(0))
    given = chunk.extras["flow_given"]
    assert given[0, :2].all() and not given[0, 2:].any() and not given[1].any()
    terms = policy.log_prob_terms(obs, chunk).detach()
    torch.testing.assert_close(terms.sum(-1), chunk.log_prob, rtol=1e-6, atol=1e-4)
    steps = terms[:, 1:].view(2, policy.num_steps + 1, 4, 7)
    assert (steps[0, :, :2] == 0).all() and (steps[1] != 0).all()  # given: no density terms
    free = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(free.actions[0, 2:], chunk.actions[0, 2:])  # conditioned
