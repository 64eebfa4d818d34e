"""`scripts/perf stats`: what one bench comparison costs (the bootstrap dominates).

Was a timed assertion in the unit tests; a wall-clock bound fails on a loaded
machine for reasons the code did not cause, so it is measured here instead.
"""

from __future__ import annotations

import random
import statistics
import time

from harness.bench.stats import compare

BUDGET_S = 2.0
"""What a comparison of 30 against 30 samples with 2,000 resamples may take."""


def _gauss(mean: float, rel_noise: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, mean * rel_noise) for _ in range(n)]


def bench_compare(repeats: int = 5) -> dict:
    """Median time of `compare` on 30 v 30 samples, 2,000 bootstrap resamples."""
    base, cand = _gauss(1000.0, 0.05, 30, seed=13), _gauss(1030.0, 0.05, 30, seed=14)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compare(base, cand, direction="higher", resamples=2000)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    verdict = "ok" if median < BUDGET_S else "OVER BUDGET"
    print(f"bench compare, 30 v 30 samples, 2000 resamples: median {1000 * median:.0f} ms of {repeats} "
          f"(budget {BUDGET_S:.0f} s: {verdict})")
    return {"median_s": median, "budget_s": BUDGET_S, "ok": median < BUDGET_S}
