"""What `smoothvla.runtime.keep_freed_memory` buys on CPU: feature-cache encoding and SFT steps.

    .venv/bin/python benchmarks/bench_malloc.py            # 3 alternating rounds, prints JSON
    .venv/bin/python benchmarks/bench_malloc.py --rounds 1

Each measurement runs in a fresh child process (malloc settings are per process), one torch
thread, alternating glibc's default (MALLOC_MMAP_MAX_=65536) and the kept-memory setting, so
the ratio compares runs taken back to back on the same machine load. Two workloads:
- encode: EfficientNet-Lite0's frozen trunk on 256 frames x 2 cameras at 128 px in batches
  of 64 frames, as `smoothvla sft` builds its feature cache;
- sft step: forward + backward + AdamW of the flow policy with the last two vision blocks
  tuned, batch 256 of cached trunk features (the sixth/seventh rounds' recipe).
Reported: CPU seconds split into user and system time, wall seconds and the child's peak
resident memory (the price of keeping freed memory), medians per workload.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from smoothvla.policies import CompactVLA, DemoBatch, VLAConfig
from smoothvla.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory(), "keep_freed_memory did not apply"
policy = CompactVLA(VLAConfig(head="flow", vision_trainable_blocks=2))
rng = np.random.default_rng(0)
if sys.argv[2] == "encode":
    images = rng.integers(0, 256, (256, 2, 128, 128, 3), dtype=np.uint8)
    work = [lambda s=s: policy.encode_images(images[s:s + 64]) for s in range(0, 256, 64)]
    grad = False
else:
    from smoothvla.policies.normalizer import Normalizer
    policy.set_normalizer(Normalizer.from_arrays(rng.uniform(-1, 1, (100, 7)), rng.normal(size=(100, 8))))
    with torch.no_grad():
        trunk = policy.encode_images(rng.integers(0, 256, (8, 2, 128, 128, 3), dtype=np.uint8))
    vis = trunk.repeat(32, *([1] * (trunk.ndim - 1)))
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    batch = DemoBatch(torch.rand(256, policy.chunk_size, 7) * 2 - 1,
                      features={"vis_feat": vis, "proprio": torch.randn(256, 8), "lang_emb": torch.randn(256, 384)})
    def step():
        loss = policy.sft_loss(batch).loss
        opt.zero_grad(); loss.backward(); opt.step()
    work = [step] * 3
    grad = True
work[0]()  # warm-up
t0, w0 = os.times(), time.perf_counter()
with torch.set_grad_enabled(grad):
    for fn in work[1:]:
        fn()
t1 = os.times()
print(json.dumps({"user_s": t1.user - t0.user, "system_s": t1.system - t0.system,
                  "wall_s": time.perf_counter() - w0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(mode: str, workload: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if mode == "default":
        env["MALLOC_MMAP_MAX_"] = "65536"  # glibc's default, and keep_freed_memory stays off
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    out = subprocess.run([sys.executable, "-c", CHILD, mode, workload], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"child {mode} {workload} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict = {}
    for workload in ("encode", "sft_step"):
        runs = {"default": [], "keep": []}
        for _ in range(args.rounds):
            for mode in ("default", "keep"):
                runs[mode].append(child(mode, workload))
        summary = {}
        for mode, rs in runs.items():
            summary[mode] = {k: round(sorted(r[k] for r in rs)[len(rs) // 2], 3)
                             for k in ("user_s", "system_s", "wall_s", "peak_rss_mb")}
        summary["wall_ratio_default_over_keep"] = round(
            sorted(d["wall_s"] / k["wall_s"] for d, k in zip(runs["default"], runs["keep"]))[args.rounds // 2], 2)
        results[workload] = summary
        print(workload, json.dumps(summary), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
