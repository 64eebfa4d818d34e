"""How many test runs the gate's culprit search costs (`scripts/perf gate`).

The search (harness/bisect.py) is a pure function of a test oracle, so it is driven
here by a fake one: a fold fails when it includes a culprit. No git, no sandbox.
Each (N, K) cell is measured over every placement of the K culprits (or seeded
random ones when there are too many) and compared with testing the N branches one
by one (which costs N runs, and would not even catch two branches that only fail
together).
"""

from __future__ import annotations

import math
import random

from harness.gate.culprits import find_culprits


def _placements(n: int, k: int, trials: int, rng: random.Random) -> list[set[int]]:
    if math.comb(n, k) <= trials:
        from itertools import combinations

        return [set(c) for c in combinations(range(n), k)]
    return [set(rng.sample(range(n), k)) for _ in range(trials)]


def bench_bisect(ns=(8, 32, 128), ks=(1, 2, 4), trials: int = 300, seed: int = 7) -> list[dict]:
    """Print and return, per (N, K), over the placements: the runs that find the
    culprits (the red gate run and the bisect runs; bound K*ceil(log2 N) + 1), the
    rebuilt heads gated again (K: K-1 red, the last green), their total, and N."""
    rng = random.Random(seed)
    rows = []
    print("culprit search: test runs to find K culprits among N branches (mean/worst over placements)")
    print(f"{'N':>5} {'K':>3} {'find':>11} {'bound':>6} {'rebuilt':>8} {'total':>11} {'one-by-one':>11} "
          f"{'saving':>7}")
    for n in ns:
        seq = [f"b{i:03d}" for i in range(n)]
        for k in ks:
            if k > n:
                continue
            find, rebuilt, total = [], [], []
            for bad in _placements(n, k, trials, rng):
                culprits = {seq[i] for i in bad}
                out = find_culprits(seq, lambda s, _kind: not (culprits & set(s)))
                assert {c.task for c in out.culprits} == culprits and out.green
                find.append(1 + out.count("bisect", "base"))
                rebuilt.append(out.count("rebuilt"))
                total.append(1 + out.tests)
            row = {"n": n, "k": k, "placements": len(find), "one_by_one": n,
                   "bound": k * math.ceil(math.log2(n)) + 1,
                   "find_mean": round(sum(find) / len(find), 2), "find_worst": max(find),
                   "rebuilt_worst": max(rebuilt),
                   "total_mean": round(sum(total) / len(total), 2), "total_worst": max(total)}
            row["saving"] = round(n / row["find_mean"], 1)
            rows.append(row)
            print(f"{n:>5} {k:>3} {row['find_mean']:>6.2f}/{row['find_worst']:<4} {row['bound']:>6} "
                  f"{row['rebuilt_worst']:>8} {row['total_mean']:>6.2f}/{row['total_worst']:<4} {n:>11} "
                  f"{row['saving']:>6.1f}x")
    print("find: the red gate run and the bisect runs; rebuilt: heads gated again without the culprits "
          "found so far (the last one green); saving: N one-by-one runs over the mean of find")
    return rows


if __name__ == "__main__":
    bench_bisect()
