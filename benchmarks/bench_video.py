"""Cost of `smoothvla eval --video`: the same tabletop episodes evaluated with videos off and
with every episode recorded (the worst case), alternating, one torch thread.

    PYTHONPATH=src python benchmarks/bench_video.py --episodes 4 --rounds 2

Prints the median wall time of each setting, their ratio, and how the recording time splits
(frames back through the worker pipe vs annotating and encoding the MP4, measured separately
on the recorded frames). The policy is a tiny untrained checkpoint: it fails, so every episode runs
to the task's step limit, which is the longest video a policy can cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from smoothvla.eval import ResultsFile  # noqa: E402
from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate  # noqa: E402
from smoothvla.report import video  # noqa: E402
from smoothvla.rollout.fake_policy import save_tiny_vla  # noqa: E402

TASK = "tabletop-object/pick-ketchup-place-basket-v1"


def one_run(policy, path: Path, episodes: int, videos: int, out: Path, workers: int) -> float:
    plan = EvalPlan(task_ids=[TASK], init_ids=range(episodes), videos=videos, record_paths=0)
    start = time.perf_counter()
    evaluate(policy, PolicyRef("tiny", str(path)), plan, ResultsFile(out), workers=workers,
             envs_per_worker=episodes, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--videos", type=int, default=0,
                        help="episodes recorded when on (default: all of them)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from smoothvla.policies import load_policy

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = save_tiny_vla(tmp / "policy", chunk_size=8)
        policy = load_policy(path)
        policy.eval()
        times: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(args.rounds):
            for name, n in (("off", 0), ("on", args.videos or args.episodes)):
                with torch.no_grad():
                    times[name].append(one_run(policy, path, args.episodes, n,
                                               tmp / f"{name}{r}.jsonl", args.workers))
        found = video.find_videos(tmp / f"on{args.rounds - 1}_videos")
        frames = [video.read_video(folder / v.mp4) for v, folder in found]
        n_frames = sum(len(f) for f in frames)
        band = video.BAND_LINES * 14 + 6
        start = time.perf_counter()  # annotate and encode the recorded frames again, alone
        for f, (v, _) in zip(frames, found):
            annotated = video.annotate(f[:, : f.shape[1] - band], np.ones(len(f), bool),
                                       v.instruction)
            video.write_mp4(tmp / "again.mp4", annotated, v.fps)
        encode = time.perf_counter() - start
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"{args.episodes} episodes x {args.rounds} rounds, {args.workers} worker(s), "
          f"{args.videos or args.episodes} recorded; "
          f"{n_frames} frames recorded per run")
    print(f"video off: {off:.2f} s  (runs {', '.join(f'{t:.2f}' for t in times['off'])})")
    print(f"video on:  {on:.2f} s  (runs {', '.join(f'{t:.2f}' for t in times['on'])})")
    print(f"ratio on / off: {on / off:.3f}")
    print(f"annotating + MP4 encoding alone: {encode:.2f} s ({1e3 * encode / max(n_frames, 1):.2f} ms "
          "per frame)")


if __name__ == "__main__":
    main()
