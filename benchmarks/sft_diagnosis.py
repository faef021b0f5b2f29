"""Why does an SFT checkpoint fail closed loop? Four measurements against its own demos.

    .venv/bin/python benchmarks/sft_diagnosis.py --data obj50.hdf5 \
        --checkpoints token=runs/sft-tok/checkpoints/step_0002000 flow=runs/sft-flow/...

1. Teacher-forced error: greedy chunks on random demo frames against the demo's next k
   actions, RMS in the normalizer's units ([-1, 1] = 1st..99th percentile), per action
   dimension. Small here means the policy fits the demonstrations.
2. Chunk displacement error: on the same frames, the distance between the position the
   predicted chunk commands in all (the sum of its k position deltas, in metres) and the
   demo's, over chunks with no padded step. Errors that persist across a chunk's steps add
   up here and are what moves the arm off the demo's path; independent per-step errors
   partly cancel. A head can have the smaller RMS error (1) and the larger displacement error.
   (1) and (2) are measured twice: on random frames and on the first 8 frames of every demo
   (the reach starts from the same home pose in every demo, so only the images tell which
   way to go).
3. Closed-loop drift: rollouts from the first demos' own (task, init state, seed); distance of
   the end effector from the demo's at steps 8, 16, 24, 32, 40 and at the demo's first
   gripper-close step, and whether the episode succeeds.
4. First-chunk sensitivity: a demo's first frame is not the env's reset state (the idle filter
   drops the expert's first sub-millimetre steps). The first chunk's summed position command
   from the reset observation, from the demo's first frame, and from the reset observation
   with the demo's agentview image, against the demo's own first k actions.

Frames and episodes come from the demos' file order, so all checkpoints see the same ones.
Results: docs/policies.md ("fifth round", "sixth round").
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from smoothvla.algorithms.sft import PROPRIO_KEYS, chunk_targets, held_in_episodes, load_frames
from smoothvla.data.hdf5 import read_demo
from smoothvla.envs import base as envs
from smoothvla.policies.vla import load_policy

DRIFT_STEPS = (8, 16, 24, 32, 40)


def teacher_forced(policy, frames, idx: np.ndarray, pos_scale: float, batch: int = 24
                   ) -> tuple[np.ndarray, float, float]:
    """Greedy chunks on frames idx (N,) against their targets -> RMS error per action dim (7,)
    in normalized units (padded steps past an episode's end excluded), and the mean chunk
    displacement error and mean demo chunk displacement in metres (unpadded chunks only;
    `pos_scale`: metres per unit position action)."""
    norm = policy._norm()
    actions, mask = chunk_targets(frames, idx, policy.chunk_size)
    target = norm.normalize_actions(torch.as_tensor(actions))
    preds = []
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            j = idx[s:s + batch]
            feats = {"vis_feat": policy.encode_images(np.stack([frames.images[c][j] for c in policy.cfg.cameras], 1)),
                     "lang_emb": policy.text.encode([frames.instructions[i] for i in frames.instruction_id[j]]),
                     "proprio": torch.as_tensor(frames.proprio[j])}
            preds.append(policy.head.sample(policy.head_states(feats), False)[0])
    pred = torch.cat(preds)
    m = torch.as_tensor(mask)[..., None]
    sq = (pred - target) ** 2 * m
    rmse = (sq.sum((0, 1)) / m.sum((0, 1))).sqrt().numpy()
    full = mask.all(1)
    moved = norm.denormalize_actions(pred)[full, :, :3].sum(1).numpy() * pos_scale
    demo_moved = actions[full, :, :3].sum(1) * pos_scale
    return (rmse, float(np.linalg.norm(moved - demo_moved, axis=1).mean()),
            float(np.linalg.norm(demo_moved, axis=1).mean()))


def demo_obs(demo, t: int, instruction: str) -> dict:
    """The observation dict `act` takes, rebuilt from demo row t."""
    return {"rgb": {c: np.asarray(demo.obs[f"{c}_rgb"][t]) for c in ("agentview", "eye_in_hand")},
            "proprio": np.concatenate([np.asarray(demo.obs[k][t]) for k in PROPRIO_KEYS]),
            "instruction": instruction}


def rollout(policy, env, episode: dict) -> tuple[np.ndarray, bool]:
    """Greedy whole-chunk rollout -> end-effector path (T+1, 3), success."""
    obs, info = env.reset(seed=int(episode["seed"]), init_id=int(episode["init_id"]))
    path, success, done = [np.asarray(info["ee_pos"])], False, False
    while not done:
        for action in policy.act([obs], sample=False).actions[0].numpy():
            obs, _, terminated, truncated, info = env.step(action)
            path.append(np.asarray(info["ee_pos"]))
            success = bool(info.get("success", False))
            done = success or terminated or truncated or len(path) > env.max_steps
            if done:
                break
    return np.stack(path), success


def diagnose(label: str, ckpt: str, data: str, frames, frame_sets: dict[str, np.ndarray],
             episodes: list[dict], pos_scale: float) -> None:
    policy = load_policy(ckpt)
    policy.eval()
    k = policy.chunk_size
    print(f"\n## {label}\n\n| teacher-forced frames | RMS error | per dim | chunk displacement error (cm) "
          "| demo chunk displacement (cm) |\n|---|---|---|---|---|")
    for name, idx in frame_sets.items():
        rmse, moved_err, moved = teacher_forced(policy, frames, idx, pos_scale)
        print(f"| {name} ({len(idx)}) | {np.sqrt((rmse ** 2).mean()):.4f} | {np.array2string(rmse, precision=3)} "
              f"| {100 * moved_err:.2f} | {100 * moved:.2f} |")
    print()
    print("| episode | success | drift at " + " / ".join(map(str, DRIFT_STEPS)) + " steps (cm) | at the demo's grasp (cm) "
          "| first chunk sum dy: reset / demo frame / reset + demo agentview / demo actions |")
    print("|---|---|---|---|---|")
    for e in episodes:
        demo = read_demo(data, e["demo"], obs_keys=PROPRIO_KEYS + ("agentview_rgb", "eye_in_hand_rgb"))
        demo_path, demo_actions = np.asarray(demo.obs["ee_pos"]), np.asarray(demo.actions)
        grasp = int(np.argmax(demo_actions[:, 6] > 0))
        env = envs.make(e["task_id"], cameras=policy.cfg.cameras, image_size=policy.cfg.image_size)
        path, success = rollout(policy, env, e)
        obs, _ = env.reset(seed=int(e["seed"]), init_id=int(e["init_id"]))
        env.close()
        drift = [100 * np.linalg.norm(path[min(s, len(path) - 1)] - demo_path[min(s, len(demo_path) - 1)])
                 for s in DRIFT_STEPS + (grasp,)]
        first = demo_obs(demo, 0, obs["instruction"])
        mixed = {**obs, "rgb": {**obs["rgb"], "agentview": first["rgb"]["agentview"]}}
        dy = [float(policy.act([o], sample=False).actions[0, :, 1].sum()) for o in (obs, first, mixed)]
        dy.append(float(demo_actions[:k, 1].sum()))
        name = f"{e['task_id'].split('/')[-1]} init {e['init_id']}"
        print(f"| {name} | {success} | {' / '.join(f'{d:.1f}' for d in drift[:-1])} | {drift[-1]:.1f} "
              f"| {' / '.join(f'{v:.2f}' for v in dy)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="HDF5 demos the checkpoints were trained on")
    parser.add_argument("--checkpoints", nargs="+", required=True, help="LABEL=DIR ...")
    parser.add_argument("--frames", type=int, default=240, help="teacher-forced frames")
    parser.add_argument("--max-demos", type=int, default=60, help="frames come from the first N demos")
    parser.add_argument("--episodes", type=int, default=3, help="closed-loop episodes (round-robin over tasks)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = load_frames((args.data,), ("agentview", "eye_in_hand"), True, max_demos=args.max_demos)
    starts = np.unique(np.concatenate([[0], frames.episode_end]))[:-1]
    starts = starts[frames.episode_end[starts] - starts >= 8]  # demos of at least 8 frames
    frame_sets = {"random": np.sort(np.random.default_rng(0).choice(len(frames.actions), args.frames, replace=False)),
                  "first 8 of each demo": (starts[:, None] + np.arange(8)).ravel()}
    episodes = held_in_episodes(load_frames((args.data,), (), False).episodes, args.episodes)
    env = envs.make(episodes[0]["task_id"])
    pos_scale = float(env.action_scale["pos"])  # metres per unit position action
    env.close()
    for spec in args.checkpoints:
        label, _, ckpt = spec.rpartition("=")
        diagnose(label or ckpt, ckpt, args.data, frames, frame_sets, episodes, pos_scale)


if __name__ == "__main__":
    main()
