"""Compact-VLA costs on one CPU core: inference per head, training memory, parameter counts.

    .venv/bin/python benchmarks/bench_policy.py            # everything, prints markdown + JSON
    .venv/bin/python benchmarks/bench_policy.py --quick    # fewer repetitions

All times are CPU seconds of this process (time.process_time), medians over repetitions.

Inference: time for `act` to produce one action chunk for a batch of 8 observations with two
128-px cameras (16 images), per head, greedy and sampled, with torch.set_num_threads(1).
Speed is also reported as a ratio against a reference timed back to back with it in every
repetition: the frozen vision encoder alone on the same 16 images (what any image policy
must pay). Also the
RL-update path: `log_prob` of the 8 sampled chunks from the cached features in
`chunk.extras` (forward + backward), which never re-runs the CNN.

Chunk size: act time per control step (act time / k) for k in 1, 4, 8, 16 (flow head).

Training memory: peak RSS of a fresh process doing 20 SFT steps (batch 16, cached features,
the real encoders loaded), per head, measured in a child process each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from smoothvla.policies import CompactVLA, DemoBatch, Normalizer, VLAConfig  # noqa: E402
from smoothvla.policies.head_configs import AuxTokenConfig, FlowHeadConfig  # noqa: E402

# Head name -> VLAConfig fields; "flow_context" is the flow expert that also cross-attends
# to every backbone state (`--policy.flow.context`).
HEADS = {"token": {"head": "token"}, "flow": {"head": "flow"},
         "flow_context": {"head": "flow", "flow": FlowHeadConfig(context=True)},
         "gaussian": {"head": "gaussian"}}


def make_obs(n: int, size: int = 128, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"rgb": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                     for c in ("agentview", "eye_in_hand")},
             "proprio": rng.normal(size=8).astype(np.float32),
             "instruction": "pick up the ketchup and place it in the basket"} for _ in range(n)]


def normalizer() -> Normalizer:
    rng = np.random.default_rng(0)
    return Normalizer.from_arrays(rng.uniform(-1, 1, (500, 7)), rng.normal(size=(500, 8)))


def timeit(fn, reps: int) -> float:
    """Median CPU seconds (time.process_time, this process only) of `reps` calls after one
    warm-up call. With one torch thread, CPU time is what the call costs on a core, and it is
    far less disturbed than wall time on a machine shared with other jobs."""
    fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def ratio(fn, ref, reps: int) -> tuple[float, float]:
    """(median CPU s of fn, median of fn/ref), the two timed back to back in every repetition."""
    fn(), ref()
    t_fn, ratios = [], []
    for _ in range(reps):
        t = time.process_time()
        ref()
        t_ref = time.process_time() - t
        t = time.process_time()
        fn()
        t_fn.append(time.process_time() - t)
        ratios.append(t_fn[-1] / t_ref)
    return float(np.median(t_fn)), float(np.median(ratios))


def bench_inference(reps: int) -> dict:
    obs = make_obs(8)
    images = np.stack([np.stack([o["rgb"][c] for c in ("agentview", "eye_in_hand")]) for o in obs])
    out: dict = {}
    for head in HEADS:
        policy = CompactVLA(VLAConfig(**HEADS[head]), normalizer()).eval()

        def ref():
            policy.encode_images(images)

        if "reference_encoder_s" not in out:
            out["reference_encoder_s"] = timeit(ref, reps)
        chunk = policy.act(obs, sample=True)

        def update():
            policy.zero_grad()
            policy.log_prob(None, chunk).sum().backward()

        greedy, greedy_r = ratio(lambda: policy.act(obs, sample=False), ref, reps)
        sampled, sampled_r = ratio(lambda: policy.act(obs, sample=True), ref, reps)
        lp, lp_r = ratio(update, ref, reps)
        out[head] = {"act_greedy_s": greedy, "act_sample_s": sampled,
                     "log_prob_fwd_bwd_from_cache_s": lp, "act_greedy_over_encoder": greedy_r,
                     "act_sample_over_encoder": sampled_r, "log_prob_over_encoder": lp_r}
    return out


def bench_chunk_sizes(reps: int) -> dict:
    obs = make_obs(8)
    out = {}
    for k in (1, 4, 8, 16):
        policy = CompactVLA(VLAConfig(head="flow", chunk_size=k), normalizer()).eval()
        t = timeit(lambda: policy.act(obs, sample=True), reps)
        out[k] = {"act_s": t, "per_control_step_s": t / k}
    return out


def parameter_counts() -> dict:
    out = {}
    for name, cfg in {
        "flow (full fine-tuning)": VLAConfig(head="flow", value_head=True),
        "token (full fine-tuning)": VLAConfig(head="token", value_head=True),
        "gaussian (full fine-tuning)": VLAConfig(head="gaussian", value_head=True),
        "flow + LoRA r=8 fusion": VLAConfig(head="flow", lora_rank=8),
        "flow + LoRA r=8 fusion+expert+vision, 2 tail blocks":
            VLAConfig(head="flow", lora_rank=8, lora_targets=("fusion", "expert", "vision"),
                      vision_trainable_blocks=2),
        "flow + 2 tuned vision blocks": VLAConfig(head="flow", vision_trainable_blocks=2),
        "flow with context, 3 expert layers, aux token head": VLAConfig(
            head="flow", flow=FlowHeadConfig(context=True, layers=3),
            aux_token=AuxTokenConfig(weight=1.0)),
    }.items():
        out[name] = CompactVLA(cfg, normalizer()).parameter_counts()
    return out


def child_training_memory(head: str, steps: int = 20) -> dict:
    """Runs in its own process: peak RSS of SFT steps from cached features."""
    torch.set_num_threads(1)
    policy = CompactVLA(VLAConfig(**HEADS[head]), normalizer())
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=3e-4)
    feats = policy.encode(make_obs(16))
    batch = DemoBatch(torch.rand(16, policy.chunk_size, 7) * 2 - 1, features=feats)
    t = time.process_time()
    for _ in range(steps):
        loss = policy.sft_loss(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_s = (time.process_time() - t) / steps
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "sft_step_s": step_s}


def training_memory() -> dict:
    out = {}
    for head in HEADS:
        res = subprocess.run([sys.executable, __file__, "--child", head], capture_output=True,
                             text=True, check=True)
        out[head] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def to_markdown(r: dict) -> str:
    lines = ["### Inference, batch of 8 observations x 2 cameras at 128 px, one core", "",
             f"Reference: frozen EfficientNet-Lite0 on the 16 images: "
             f"{r['inference']['reference_encoder_s'] * 1e3:.1f} ms "
             f"({r['inference']['reference_encoder_s'] / 16 * 1e3:.1f} ms per image).", "",
             "| head | act greedy ms | / encoder | act sampled ms | / encoder | log_prob fwd+bwd from cache ms | / encoder |",
             "|---|---|---|---|---|---|---|"]
    for head in HEADS:
        x = r["inference"][head]
        lines.append(f"| {head} | {x['act_greedy_s'] * 1e3:.1f} | {x['act_greedy_over_encoder']:.2f} | "
                     f"{x['act_sample_s'] * 1e3:.1f} | {x['act_sample_over_encoder']:.2f} | "
                     f"{x['log_prob_fwd_bwd_from_cache_s'] * 1e3:.1f} | {x['log_prob_over_encoder']:.2f} |")
    lines += ["", "### Chunk size (flow head, sampled, batch 8)", "",
              "| k | act ms | ms per control step |", "|---|---|---|"]
    for k, x in r["chunk_sizes"].items():
        lines.append(f"| {k} | {x['act_s'] * 1e3:.1f} | {x['per_control_step_s'] * 1e3:.1f} |")
    if "training_memory" in r:
        lines += ["", "### Training (SFT from cached features, batch 16, one core)", "",
                  "| head | peak RSS MB | ms per SFT step |", "|---|---|---|"]
        for head, x in r["training_memory"].items():
            lines.append(f"| {head} | {x['peak_rss_mb']:.0f} | {x['sft_step_s'] * 1e3:.1f} |")
    lines += ["", "### Parameters", ""]
    keys = ["vision_trunk", "vision_tail", "text_encoder", "fusion", "head", "aux_head", "value_head",
            "lora", "trainable"]
    lines += ["| config | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, c in r["parameters"].items():
        lines.append(f"| {name} | " + " | ".join(f"{c.get(k, 0):,}" for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no memory runs")
    parser.add_argument("--child", choices=HEADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        print(json.dumps(child_training_memory(args.child)))
        return
    reps = 3 if args.quick else 10
    result = {"torch_threads": torch.get_num_threads(), "inference": bench_inference(reps),
              "chunk_sizes": bench_chunk_sizes(reps), "parameters": parameter_counts()}
    if not args.quick:
        result["training_memory"] = training_memory()
    print(to_markdown(result))
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
