"""Speed of `mean_jerk` on 10^6 samples of 3-D positions (target: well under 100 ms).

Reports the time against a reference in the same process: one pass of NumPy's own
`np.diff(p, n=3, axis=0)` over the same array, so the ratio is stable on a noisy machine.
Run: .venv/bin/python benchmarks/bench_metrics.py
"""

from __future__ import annotations

import platform
import time

import numpy as np

from smoothvla.metrics import jerk, mean_jerk


def best_of(fn, repeats: int = 15) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    p = np.cumsum(rng.normal(0, 1e-3, size=(1_000_000, 3)), axis=0)
    batch = p.reshape(100, 10_000, 3)
    reference = best_of(lambda: np.diff(p, n=3, axis=0))
    rows = [
        ("mean_jerk, one (10^6, 3) path", best_of(lambda: mean_jerk(p, 0.05))),
        ("jerk, one (10^6, 3) path", best_of(lambda: jerk(p, 0.05))),
        ("mean_jerk, (100, 10^4, 3) batch", best_of(lambda: mean_jerk(batch, 0.05))),
        ("mean_jerk, batch with lengths", best_of(
            lambda: mean_jerk(batch, 0.05, lengths=np.full(100, 9_000)))),
    ]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"reference np.diff(n=3) on (10^6, 3): {reference * 1e3:.1f} ms")
    print(f"{'case':<36} {'ms':>8} {'x reference':>12}")
    for name, seconds in rows:
        print(f"{name:<36} {seconds * 1e3:8.1f} {seconds / reference:12.2f}")


if __name__ == "__main__":
    main()
