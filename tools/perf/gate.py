"""How many test runs the gate's culprit search costs (`scripts/perf gate`).

The search (harness/gate/culprits.py) is a pure function of a test oracle, so it is
driven here by a fake one: a fold fails when it includes a culprit. No git, no
sandbox. Each (N, K) cell is measured over every placement of the K culprits (or
seeded random ones when there are too many) and compared with testing the N
branches one by one (which costs N runs, and would not even catch two branches
that only fail together).

The blame columns measure the same placements with each culprit made the later
half of a semantic pair: it passes alone and fails with one earlier branch (a
seeded random one of the others), as two agents' clashing changes do. The gate then
tests it alone and searches its partner (find_partners); those runs come on top of
the search.
"""

from __future__ import annotations

import math
import random

from harness.gate.culprits import find_culprits, find_partners


def _placements(n: int, k: int, trials: int, rng: random.Random) -> list[set[int]]:
    if math.comb(n, k) <= trials:
        from itertools import combinations

        return [set(c) for c in combinations(range(n), k)]
    return [set(rng.sample(range(n), k)) for _ in range(trials)]


def _pairs(seq: list[str], bad: set[int], rng: random.Random) -> dict[str, str | None]:
    """Per culprit, an earlier branch that is not a culprit to clash with (None when
    there is none: it then fails alone, as a plain breaker does)."""
    out: dict[str, str | None] = {}
    for i in sorted(bad):
        earlier = [j for j in range(i) if j not in bad]
        out[seq[i]] = seq[rng.choice(earlier)] if earlier else None
    return out


def _blame_runs(seq: list[str], pairs: dict[str, str | None]) -> tuple[int, int, int]:
    """Runs of the search on the pair oracle, the alone runs and the partner runs."""

    def passes(s: tuple[str, ...], _kind: str) -> bool:
        have = set(s)
        return not any(c in have and (p is None or p in have) for c, p in pairs.items())

    out = find_culprits(seq, passes)
    assert {c.task for c in out.culprits} == set(pairs) and out.green
    alone = partners = 0
    for c in out.culprits:
        if not c.before:
            continue  # first in line: the gate tests nothing alone
        found = find_partners(c.before, c.task, passes)
        assert found.partners == ((pairs[c.task],) if pairs[c.task] else ())
        alone += found.calls[0][1] == "alone"
        partners += found.search_runs
    return 1 + out.tests, alone, partners


def bench_bisect(ns=(8, 32, 128), ks=(1, 2, 4), trials: int = 300, seed: int = 7) -> list[dict]:
    """Print and return, per (N, K), over the placements: the runs that find the
    culprits (the red gate run and the bisect runs; bound K*ceil(log2 N) + 1), the
    rebuilt heads gated again (K: K-1 red, the last green), their total, and N; then,
    with each culprit half of a semantic pair, the partner-search runs (bound
    K*(ceil(log2 N) + 1)) and the total with blame (search, alone and partner runs)."""
    rng = random.Random(seed)
    pair_rng = random.Random(seed + 1)  # its own stream: the placements stay as they were
    rows = []
    print("culprit search: test runs to find K culprits among N branches (mean/worst over placements)")
    print(f"{'N':>5} {'K':>3} {'find':>11} {'bound':>6} {'rebuilt':>8} {'total':>11} {'one-by-one':>11} "
          f"{'saving':>7} {'partners':>11} {'bound':>6} {'with blame':>11}")
    for n in ns:
        seq = [f"b{i:03d}" for i in range(n)]
        for k in ks:
            if k > n:
                continue
            find, rebuilt, total, partners, blamed = [], [], [], [], []
            for bad in _placements(n, k, trials, rng):
                culprits = {seq[i] for i in bad}
                out = find_culprits(seq, lambda s, _kind: not (culprits & set(s)))
                assert {c.task for c in out.culprits} == culprits and out.green
                find.append(1 + out.count("bisect", "base"))
                rebuilt.append(out.count("rebuilt"))
                total.append(1 + out.tests)
                searched, alone, extra = _blame_runs(seq, _pairs(seq, bad, pair_rng))
                partners.append(extra)
                blamed.append(searched + alone + extra)
            row = {"n": n, "k": k, "placements": len(find), "one_by_one": n,
                   "bound": k * math.ceil(math.log2(n)) + 1,
                   "find_mean": round(sum(find) / len(find), 2), "find_worst": max(find),
                   "rebuilt_worst": max(rebuilt),
                   "total_mean": round(sum(total) / len(total), 2), "total_worst": max(total),
                   "partners_mean": round(sum(partners) / len(partners), 2), "partners_worst": max(partners),
                   "partners_bound": k * (math.ceil(math.log2(n)) + 1),
                   "blame_total_mean": round(sum(blamed) / len(blamed), 2), "blame_total_worst": max(blamed)}
            row["saving"] = round(n / row["find_mean"], 1)
            rows.append(row)
            print(f"{n:>5} {k:>3} {row['find_mean']:>6.2f}/{row['find_worst']:<4} {row['bound']:>6} "
                  f"{row['rebuilt_worst']:>8} {row['total_mean']:>6.2f}/{row['total_worst']:<4} {n:>11} "
                  f"{row['saving']:>6.1f}x {row['partners_mean']:>6.2f}/{row['partners_worst']:<4} "
                  f"{row['partners_bound']:>6} {row['blame_total_mean']:>6.2f}/{row['blame_total_worst']:<4}")
    print("find: the red gate run and the bisect runs; rebuilt: heads gated again without the culprits "
          "found so far (the last one green); saving: N one-by-one runs over the mean of find")
    print("partners: with each culprit the later half of a semantic pair, the runs that name its partner "
          "(on top of one alone run a culprit); with blame: search, alone and partner runs together")
    return rows


if __name__ == "__main__":
    bench_bisect()
