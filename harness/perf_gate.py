"""How many test runs the gate's culprit search costs (`scripts/perf gate`).

The search (harness/bisect.py) is a pure function of a test oracle, so it is driven
here by a fake one: a fold fails when it includes a culprit. No git, no sandbox.
Each (N, K) cell is measured over seeded random placements of the K culprits and
compared with testing the N branches one by one (which costs N runs, and would not
even catch two branches that only fail together).
"""

from __future__ import annotations

import math
import random

from .bisect import find_culprits


def _placements(n: int, k: int, trials: int, rng: random.Random) -> list[set[int]]:
    if math.comb(n, k) <= trials:
        from itertools import combinations

        return [set(c) for c in combinations(range(n), k)]
    return [set(rng.sample(range(n), k)) for _ in range(trials)]


def bench_bisect(ns=(8, 32, 128), ks=(1, 2, 4), trials: int = 300, seed: int = 7) -> list[dict]:
    """Print and return, per (N, K): mean and worst test runs after the red gate
    run (up to the confirmed green rebuild), the bound K*ceil(log2 N) + K + 1 (one
    run per culprit to learn whether another remains, the last being the confirming
    run; one to check the base when a culprit is first), and N."""
    rng = random.Random(seed)
    rows = []
    print("culprit search: test runs after the red gate run, to a confirmed green rebuild")
    print(f"{'N':>5} {'K':>3} {'mean':>7} {'worst':>6} {'bound':>6} {'one-by-one':>11} {'saving':>7}")
    for n in ns:
        seq = [f"b{i:03d}" for i in range(n)]
        for k in ks:
            if k > n:
                continue
            costs = []
            for bad in _placements(n, k, trials, rng):
                culprits = {seq[i] for i in bad}
                out = find_culprits(seq, lambda s: not (culprits & set(s)))
                assert {c.task for c in out.culprits} == culprits and out.green
                costs.append(out.tests)
            row = {"n": n, "k": k, "mean_runs": round(sum(costs) / len(costs), 2), "worst_runs": max(costs),
                   "bound": k * math.ceil(math.log2(n)) + k + 1, "one_by_one": n,
                   "placements": len(costs)}
            row["saving"] = round(n / row["mean_runs"], 1)
            rows.append(row)
            print(f"{n:>5} {k:>3} {row['mean_runs']:>7.2f} {row['worst_runs']:>6} {row['bound']:>6} "
                  f"{n:>11} {row['saving']:>6.1f}x")
    return rows


if __name__ == "__main__":
    bench_bisect()
