"""Throughput of the tabletop env, against a bare MuJoCo loop on the same scene.

Measures control steps per second (one step = 25 physics steps of 2 ms + IK + renders) for
one env without rendering, with one and with two 128-px cameras, N envs spread over 2 worker
processes, and the reference: the same model replaying the env's actuator targets with
`mj_step(nstep=25)` plus the same renders, with no Python env layer. Env and reference runs
are interleaved and the best of `repeats` is kept, both per wall-clock second and per CPU
second of this process (steadier on a shared machine). Writes a markdown table.

    python benchmarks/bench_envs.py --out /tmp/bench_envs.md
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "0")  # as smoothvla.envs.tabletop sets it

import dataclasses  # noqa: E402
import datetime  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tyro  # noqa: E402


@dataclasses.dataclass
class Config:
    task: str = "tabletop-object/pick-ketchup-place-basket-v1"
    """Task whose scene is stepped."""
    steps: int = 300
    """Control steps per timed run."""
    repeats: int = 3
    """Timed runs per configuration (best kept)."""
    image_size: int = 128
    """Square image side in pixels."""
    num_envs: int = 4
    """Envs in the multi-process run, split evenly over `workers` processes."""
    workers: int = 2
    """Worker processes in the multi-process run."""
    out: str = ""
    """Markdown file to write (atomically); empty: print only."""


def _make(task: str, cameras: tuple[str, ...], image_size: int):
    from smoothvla.envs import make

    return make(task, cameras=cameras, image_size=image_size)


def time_env(task: str, cameras: tuple[str, ...], image_size: int,
             steps: int) -> tuple[float, float]:
    """Control steps per wall-clock second and per CPU second (all threads of this process,
    GL included) of one env under uniform random actions."""
    env = _make(task, cameras, image_size)
    env.reset(seed=0, init_id=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 7)) * 0.3
    for a in actions[:10]:
        env.step(a)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, a in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=i, init_id=0)
    rates = steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)
    env.close()
    return rates


def record_controls(task: str, steps: int) -> np.ndarray:
    """The actuator targets (steps, nu) the env sends under the benchmark's random actions."""
    env = _make(task, (), 32)
    env.reset(seed=0, init_id=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 7)) * 0.3
    ctrls = []
    for i, a in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(a)
        ctrls.append(env.data.ctrl.copy())
        if terminated or truncated:
            env.reset(seed=i, init_id=0)
    env.close()
    return np.array(ctrls)


def time_bare(task: str, cameras: tuple[str, ...], image_size: int,
              ctrls: np.ndarray) -> tuple[float, float]:
    """The same scene and the same motion with no env layer: per control step, set the
    recorded actuator targets, `mj_step` x 25, and the same renders."""
    import mujoco

    env = _make(task, (), image_size)
    env.reset(seed=0, init_id=0)
    m, d = env.model, env.data
    renderer = mujoco.Renderer(m, image_size, image_size) if cameras else None
    cam_ids = [m.camera(c).id for c in cameras]
    t0, c0 = time.perf_counter(), time.process_time()
    for ctrl in ctrls:
        d.ctrl[:] = ctrl
        mujoco.mj_step(m, d, nstep=25)
        for cam in cam_ids:
            renderer.update_scene(d, camera=cam)
            renderer.render()
    steps = len(ctrls)
    rates = steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)
    if renderer is not None:
        renderer.close()
    env.close()
    return rates


def _worker(args: tuple[str, int, int, int]) -> tuple[int, float]:
    task, n_envs, image_size, steps = args
    envs = [_make(task, ("agentview",), image_size) for _ in range(n_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=i, init_id=i)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        for i, env in enumerate(envs):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-0.3, 0.3, 7))
            if terminated or truncated:
                env.reset(seed=i, init_id=i)
    elapsed = time.perf_counter() - t0
    for env in envs:
        env.close()
    return n_envs * steps, elapsed


def time_pool(cfg: Config, workers: int) -> float:
    """Total control steps per second of `num_envs // workers` envs (1 camera) in each of
    `workers` spawned processes (each process builds its envs before the clock starts)."""
    per = max(1, cfg.num_envs // cfg.workers)
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.map(_worker, [(cfg.task, per, cfg.image_size, cfg.steps // per)] *
                           workers)
    return sum(n for n, _ in results) / max(t for _, t in results)


TRACK_DIRECTIONS = ((1, 0, 0), (0, 1, 0), (0, 0, -1), (0.5, -0.5, -0.5), (-0.65, 0.65, 0.39))


def tracking_errors(task: str, peak: float) -> tuple[float, float]:
    """Worst (peak, settled) distance in metres between the TCP and the commanded path over
    straight moves (5 x peak long) in TRACK_DIRECTIONS from the home pose whose per-step
    delta ramps 0 -> peak -> 0 (3 steps up, 2 at peak, 3 down); settled = 3 steps after
    the motion ends."""
    env = _make(task, (), 32)
    ramp = list(np.linspace(0, peak, 5)[1:-1])
    profile = ramp + [peak, peak] + ramp[::-1] + [0.0, 0.0, 0.0]
    worst_peak = worst_end = 0.0
    for direction in TRACK_DIRECTIONS:
        unit = np.asarray(direction, float) / np.linalg.norm(direction)
        _, info = env.reset(seed=0, init_id=0)
        commanded = info["ee_pos"].copy()
        for v in profile:
            action = np.r_[unit * v / env.action_scale["pos"], 0, 0, 0, -1]
            commanded = commanded + unit * v
            info = env.step(action)[4]
            err = float(np.linalg.norm(info["ee_pos"] - commanded))
            worst_peak = max(worst_peak, err)
        worst_end = max(worst_end, err)
    env.close()
    return worst_peak, worst_end


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else the platform's machine string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_libero_stock(steps: int) -> tuple[str, float] | None:
    """Stock LIBERO's control steps/s (two 128-px cameras), or None if it is not installed."""
    try:
        import libero  # noqa: F401
    except ImportError:
        return None
    from bench_libero import _actions, _stock

    task = "libero-object/pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    rate, _ = _stock(task, 0, _actions(min(steps, 60)))
    return task, rate


def run(cfg: Config) -> str:
    configs = [("state only", ()), ("1 camera (agentview)", ("agentview",)),
               ("2 cameras", ("agentview", "eye_in_hand"))]
    rows = []
    ctrls = record_controls(cfg.task, cfg.steps)
    for label, cams in configs:
        env_rates, bare_rates = [], []
        for _ in range(cfg.repeats):
            env_rates.append(time_env(cfg.task, cams, cfg.image_size, cfg.steps))
            bare_rates.append(time_bare(cfg.task, cams, cfg.image_size, ctrls))
        env_rate, bare_rate = (max(r[0] for r in env_rates), max(r[0] for r in bare_rates))
        env_cpu, bare_cpu = (max(r[1] for r in env_rates), max(r[1] for r in bare_rates))
        rows.append((label, env_rate, bare_rate, env_rate / bare_rate, env_cpu, bare_cpu,
                     env_cpu / bare_cpu))
        print(f"{label:24s} env {env_rate:7.1f} steps/s  bare {bare_rate:7.1f}  "
              f"ratio {env_rate / bare_rate:.2f} | per CPU-s env {env_cpu:7.1f} "
              f"bare {bare_cpu:7.1f} ratio {env_cpu / bare_cpu:.2f}", flush=True)
    multi, single = [], []
    for _ in range(cfg.repeats):
        multi.append(time_pool(cfg, cfg.workers))
        single.append(time_pool(cfg, 1))
    multi_rate, single_rate = max(multi), max(single)
    print(f"{cfg.num_envs} envs / {cfg.workers} processes: {multi_rate:.1f} steps/s total; "
          f"one such process alone: {single_rate:.1f}", flush=True)

    libero = time_libero_stock(cfg.steps)
    if libero:
        print(f"stock LIBERO ({libero[0]}): {libero[1]:.1f} steps/s; tabletop 1 camera is "
              f"{rows[1][1] / libero[1]:.1f}x faster per step", flush=True)

    import mujoco

    tracking = [(peak, *tracking_errors(cfg.task, peak)) for peak in (0.02, 0.04, 0.05)]
    for peak, worst, end in tracking:
        print(f"tracking, peak {peak} m/step: worst {worst * 1000:.2f} mm, "
              f"settled {end * 1000:.2f} mm", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Tabletop env throughput",
        "",
        (f"Measured {now} on {platform.node()} ({cpu_model()}, "
         f"{os.cpu_count()} CPU cores, MuJoCo {mujoco.__version__}, "
         f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
         f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS')}); shared machine, other jobs "
         "running. "
         f"Task `{cfg.task}`, {cfg.image_size}x{cfg.image_size} images, random actions, "
         f"best of {cfg.repeats} runs of {cfg.steps} control steps."),
        "Command: `python benchmarks/bench_envs.py --out /tmp/bench_envs.md`.",
        "",
        ("| configuration | env steps/s | bare MuJoCo loop steps/s | env / bare "
         "| env steps per CPU-s | bare steps per CPU-s | env / bare (CPU) |"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {label} | {e:.1f} | {b:.1f} | {r:.2f} | {ec:.1f} | {bc:.1f} | {rc:.2f} |"
              for label, e, b, r, ec, bc, rc in rows]
    if libero:
        lines += [
            "",
            f"Stock LIBERO in the same script (`{libero[0]}`, its `OffScreenRenderEnv` with two "
            f"128-px cameras, as LIBERO's evaluation builds it): {libero[1]:.1f} steps/s, so one "
            f"tabletop env with one 128-px camera is {rows[1][1] / libero[1]:.1f}x faster per "
            f"control step (with two cameras {rows[2][1] / libero[1]:.1f}x).",
        ]
    lines += [
        "",
        "| multi-process (1 camera) | total steps/s |",
        "|---|---:|",
        (f"| {cfg.num_envs} envs over {cfg.workers} processes "
         f"({cfg.num_envs // cfg.workers} per process) | {multi_rate:.1f} |"),
        (f"| one process with {cfg.num_envs // cfg.workers} envs (same per-process work) "
         f"| {single_rate:.1f} |"),
        (f"| scaling ({cfg.workers} processes / 1) | {multi_rate / single_rate:.2f}x |"),
        "",
        (f"Tracking of straight moves in {len(TRACK_DIRECTIONS)} directions, the per-step "
         "delta ramping 0 -> peak -> 0 (distance between TCP and commanded path):"),
        "",
        "| peak delta per step | worst error | error 3 steps after the end |",
        "|---:|---:|---:|",
        *[f"| {peak:.2f} m ({peak / 0.05:.1f} m/s) | {worst * 1000:.2f} mm | {end * 1000:.2f} mm |"
          for peak, worst, end in tracking],
        "",
        ("One control step = 25 physics steps at 500 Hz + one IK solve + the renders. The bare "
         "loop replays the actuator targets the env produced (same motion, same contacts) "
         "with `mj_step(nstep=25)` and the same renders on the same model, without the env's "
         "IK, servo ramp, success checks and observation assembly. Wall-clock rates "
         "swing with the load other jobs put on the 2 shared cores; rates per CPU-second "
         "(process CPU time, GL threads included) are steadier, so ratios are given both ways."),
        f"Load average (1, 5, 15 min) when written: {load}.",
        "",
    ]
    return "\n".join(lines)


def main(cfg: Config) -> None:
    text = run(cfg)
    if cfg.out:
        path = Path(cfg.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            f.write(text)
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
        print(f"wrote {path}")
    else:
        print(text)


if __name__ == "__main__":
    main(tyro.cli(Config))
