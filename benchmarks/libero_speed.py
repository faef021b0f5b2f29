"""smoothvla's LIBERO env against stock LIBERO, in one process: steps/s and bit identity.

    python benchmarks/libero_speed.py [--task libero-object/...] [--episodes 2] [--steps 80]
                                      [--chunk 8]

Both run the same episodes: official init states 0, 1, ... (env seed = init id), each
10 no-op settle steps (LIBERO's `num_steps_wait`) and then `--steps` steps of one smooth
random action sequence, with two 128 px cameras (agentview, eye-in-hand).

- stock: LIBERO's `OffScreenRenderEnv` built once, as LIBERO's evaluation builds it; per
  episode `reset()` (a hard reset: the model is rebuilt), `set_init_state`, the settle
  steps, the steps. Its observables render both cameras inside every step (multisampled).
- smoothvla: `smoothvla.envs.make(task)` built once; per episode `reset(seed, init_id)`
  (soft reset, settle steps without images), the steps with images rendered after each
  step (no multisampling, out-of-view meshes not drawn).
- smoothvla, chunked (`--chunk K`, 0 to leave it out): the same env as a policy rollout
  steps it, K-step action chunks executed whole: images rendered after the last step of
  each chunk only (`step(a, render=False)` inside it), the states the policy observes.

Numpy's global RNG (which LIBERO's placement of fixtures reads) is seeded the same way for
both. Checked, or the script fails: the simulator state (time, qpos, qvel) is bit-identical
at every step; `info["success"]` equals stock's `done`; every image smoothvla returned
checked (every `--check-every` steps, untimed) equals robosuite's own renderer on the same
simulator data with the same GL settings (stock's images differ by design: they are
sampled 2 ms into the step and multisampled, docs/libero.md).
Printed: steps/s of the stepping alone (steady state) and of whole episodes (reset and
settle included), the latter also per CPU-second of this process (software rendering runs
in it, `LP_NUM_THREADS=0`, for both envs; steadier than wall time on a shared machine),
and the ratios.
The whole-episode ratio depends on the episode length: stock rebuilds the model at every
reset (seconds), smoothvla does not.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("LP_NUM_THREADS", "0")  # llvmpipe renders in the calling thread

import numpy as np

DEFAULT_TASK = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"
SETTLE = 10
CAMERAS = ("agentview", "eye_in_hand")
STOCK_KEYS = {"agentview": "agentview_image", "eye_in_hand": "robot0_eye_in_hand_image"}


def actions(n: int, seed: int) -> np.ndarray:
    """(n, 7) smooth random actions in [-1, 1]: the hand wanders, the gripper toggles."""
    rng = np.random.default_rng(seed)
    a = np.cumsum(rng.normal(0, 0.15, (n, 7)), axis=0)
    a[:, 6] = np.where((np.arange(n) // 20) % 2 == 0, -1.0, 1.0)
    return np.clip(a, -1, 1) * np.array([0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 1.0])


def _global_seed(seed: int, init_id: int) -> int:
    """The seed `LiberoEnv.reset` gives numpy's global RNG (fixture placement)."""
    return (seed * 1_000_003 + init_id) % 2**32


def run_stock(task_id: str, inits: list[int], acts: list[np.ndarray]) -> dict:
    from libero.libero.envs import OffScreenRenderEnv

    from smoothvla.envs import get_task
    from smoothvla.envs.libero.tasks import bddl_path, init_states

    spec = get_task(task_id)
    start = time.perf_counter()
    env = OffScreenRenderEnv(bddl_file_name=bddl_path(spec), camera_heights=128,
                             camera_widths=128)
    build = time.perf_counter() - start
    states, done, step_s, episode_s, cpu_s, step_cpu_s = [], [], 0.0, 0.0, 0.0, 0.0
    noop = [0.0] * 6 + [-1.0]
    for init, seq in zip(inits, acts):
        c0 = time.process_time()
        t0 = time.perf_counter()
        np.random.seed(_global_seed(init, init))
        env.reset()
        env.set_init_state(init_states(spec.suite, spec.name)[init])
        for _ in range(SETTLE):
            env.step(noop)
        t1, c1 = time.perf_counter(), time.process_time()
        for a in seq:
            obs, _, d, _ = env.step(a)
            states.append(env.get_sim_state())
            done.append(bool(d))
        t2 = time.perf_counter()
        step_cpu_s += time.process_time() - c1
        cpu_s += time.process_time() - c0
        step_s += t2 - t1
        episode_s += t2 - t0
        assert obs["agentview_image"].shape == (128, 128, 3)
    env.close()
    return {"build_s": build, "step_s": step_s, "episode_s": episode_s, "cpu_s": cpu_s,
            "step_cpu_s": step_cpu_s, "states": np.array(states), "done": done}


def run_ours(task_id: str, inits: list[int], acts: list[np.ndarray], check_every: int,
             chunk: int = 1) -> dict:
    """`chunk` > 1: render only after every `chunk`-th step (and check each such image)."""
    from smoothvla.envs import make

    start = time.perf_counter()
    env = make(task_id, cameras=CAMERAS, image_size=128)
    build = time.perf_counter() - start
    states, success, checked = [], [], 0
    step_s = episode_s = cpu_s = step_cpu_s = 0.0
    for init, seq in zip(inits, acts):
        c0 = time.process_time()
        t0 = time.perf_counter()
        env.reset(seed=init, init_id=init)
        t1, c1 = time.perf_counter(), time.process_time()
        check_s = check_cpu = 0.0  # the image checks are not timed
        for i, a in enumerate(seq):
            render = (i + 1) % chunk == 0
            obs, _, _, _, info = env.step(a, render=render)
            states.append(env.sim_state)
            success.append(info["success"])
            if not render:
                assert obs["rgb"] == {}
            elif chunk > 1 or i % check_every == 0:
                c, cc = time.perf_counter(), time.process_time()
                if not same_as_robosuite(env, obs["rgb"]):
                    raise AssertionError(f"step {i}: an image differs from robosuite's renderer")
                checked += len(CAMERAS)
                check_s += time.perf_counter() - c
                check_cpu += time.process_time() - cc
        t2 = time.perf_counter()
        cpu_s += time.process_time() - c0 - check_cpu
        step_cpu_s += time.process_time() - c1 - check_cpu
        step_s += t2 - t1 - check_s
        episode_s += t2 - t0 - check_s
    env.close()
    return {"build_s": build, "step_s": step_s, "episode_s": episode_s, "cpu_s": cpu_s,
            "step_cpu_s": step_cpu_s, "states": np.array(states), "done": success,
            "checked": checked}


def same_as_robosuite(env, rgb: dict) -> bool:
    """The images `env` just returned equal robosuite's own renderer (`sim.render`, every
    mesh drawn) on the current simulator data, turned upright the same way."""
    from smoothvla.envs.libero.env import CAMERAS as NAMES
    from smoothvla.envs.libero.env import IMAGE_CONVENTIONS

    flip = IMAGE_CONVENTIONS[env.image_convention]
    return all(np.array_equal(flip(env._sim.render(camera_name=NAMES[cam], width=128,
                                                   height=128)), rgb[cam])
               for cam in CAMERAS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default=DEFAULT_TASK)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=80, help="steps per episode after settling")
    parser.add_argument("--chunk", type=int, default=8,
                        help="also time the env rendering after every K-th step only, as a "
                        "rollout of K-step chunks does (0: leave that row out)")
    parser.add_argument("--check-every", type=int, default=10,
                        help="check the images of every N-th step against robosuite's renderer "
                        "(untimed)")
    args = parser.parse_args(argv)
    inits = list(range(args.episodes))
    acts = [actions(args.steps, seed=i) for i in inits]

    stock = run_stock(args.task, inits, acts)
    runs = [("stock LIBERO (OffScreenRenderEnv, hard reset per episode)", stock),
            ("smoothvla LiberoEnv (reused, soft reset), images after every step",
             run_ours(args.task, inits, acts, args.check_every))]
    if args.chunk > 1:
        runs.append((f"smoothvla LiberoEnv (reused, soft reset), images after each {args.chunk}-step "
                     "chunk",
                     run_ours(args.task, inits, acts, args.check_every, args.chunk)))
    for label, ours in runs[1:]:
        if stock["states"].shape != ours["states"].shape or not np.array_equal(
                stock["states"], ours["states"]):
            diff = np.abs(stock["states"] - ours["states"]).max(axis=1)
            raise AssertionError(f"{label}: simulator states differ from stock LIBERO (first "
                                 f"at step {int(np.flatnonzero(diff)[0])}, max {diff.max():.3g})")
        if stock["done"] != ours["done"]:
            raise AssertionError(f"{label}: success flags differ from stock LIBERO's done")
    checked = sum(r["checked"] for _, r in runs[1:])

    n = len(stock["states"])
    rows = []
    for label, r in runs:
        rows.append((label, r["build_s"], n / r["step_s"], n / r["episode_s"],
                     n / r["step_cpu_s"], n / r["cpu_s"]))
    lines = [
        f"LIBERO speed, {args.task}, init states {inits}, {args.steps} steps per episode "
        f"after {SETTLE} settle steps, two 128 px cameras; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, MUJOCO_GL={os.environ['MUJOCO_GL']}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"bit-identical simulator states over {n} steps: yes; success flags: equal; "
        f"{checked} images equal robosuite's renderer",
        "",
        "| env | build s | steps/s: stepping | steps/s: episodes incl. reset | "
        "steps per CPU-s: stepping | steps per CPU-s: episodes incl. reset |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, build, *rates in rows:
        lines.append(f"| {label} | {build:.1f} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")
    for label, _, *rates in rows[1:]:
        lines.append(f"| ratio to stock: {label.rpartition(', ')[2]} | | "
                     + " | ".join(f"**{b / a:.2f}x**" for a, b in zip(rows[0][2:], rates))
                     + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
