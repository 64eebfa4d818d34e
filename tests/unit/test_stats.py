"""Statistics on synthetic samples whose answers are known."""

from __future__ import annotations

import math
import random

import pytest

from harness.bench.stats import compare, mann_whitney_u, summarize


def gauss(mean: float, rel_noise: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, mean * rel_noise) for _ in range(n)]


def test_summarize_known_values() -> None:
    s = summarize([1, 2, 3, 4, 100])
    assert s.n == 5
    assert s.median == 3
    assert s.mean == 22
    assert s.min == 1 and s.max == 100
    assert s.iqr == pytest.approx(2.0)  # Q1=2, Q3=4
    assert s.mad == 1  # |x-3| = 2,1,0,1,97 -> median 1
    assert s.rel_spread == pytest.approx(2 / 3)
    assert s.stdev == pytest.approx(math.sqrt(sum((x - 22) ** 2 for x in [1, 2, 3, 4, 100]) / 4))


def test_summarize_single_and_even() -> None:
    assert summarize([7.0]).stdev == 0.0
    assert summarize([1, 2, 3, 4]).median == 2.5


def test_summarize_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_mann_whitney_matches_reference() -> None:
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0
    assert p == pytest.approx(0.0809, abs=1e-3)  # scipy asymptotic, continuity corrected
    assert mann_whitney_u([5, 5, 5], [5, 5])[1] == 1.0


def test_five_percent_gain_at_low_noise_is_significant_faster() -> None:
    base = gauss(1000.0, 0.01, 15, seed=1)
    cand = gauss(1050.0, 0.01, 15, seed=2)
    c = compare(base, cand, direction="higher")
    assert c.significant
    assert c.verdict == "faster"
    assert c.ci_low <= 1.05 <= c.ci_high
    assert c.ci_low > 1.01
    assert c.p_value < 0.05
    assert c.speedup == pytest.approx(c.candidate_median / c.baseline_median)


@pytest.mark.parametrize("seed", range(5))
def test_equal_distributions_are_not_significant(seed: int) -> None:
    base = gauss(1000.0, 0.01, 15, seed=100 + seed)
    cand = gauss(1000.0, 0.01, 15, seed=200 + seed)
    c = compare(base, cand, direction="higher")
    assert not c.significant
    assert c.verdict == "no-change"


def test_slower_candidate_is_slower() -> None:
    base = gauss(1000.0, 0.01, 15, seed=3)
    cand = gauss(900.0, 0.01, 15, seed=4)
    c = compare(base, cand, direction="higher")
    assert c.verdict == "slower"
    assert c.significant
    assert c.speedup < 1.0 and c.ci_high < 0.99


def test_lower_is_better_flips_direction() -> None:
    base = gauss(10.0, 0.01, 15, seed=5)  # latency
    cand = gauss(9.0, 0.01, 15, seed=6)  # lower latency: better
    c = compare(base, cand, direction="lower")
    assert c.verdict == "faster"
    assert c.speedup == pytest.approx(c.baseline_median / c.candidate_median)
    assert c.ci_low <= 10 / 9 <= c.ci_high
    worse = compare(base, cand, direction="higher")
    assert worse.verdict == "slower"


def test_large_noise_small_difference_is_not_significant() -> None:
    base = gauss(1000.0, 0.20, 12, seed=7)
    cand = gauss(1020.0, 0.20, 12, seed=8)
    c = compare(base, cand, direction="higher")
    assert not c.significant
    assert c.verdict == "no-change"
    assert c.ci_low < 1.0 < c.ci_high


def test_effect_inside_min_effect_band_is_not_significant() -> None:
    base = gauss(1000.0, 0.001, 30, seed=9)
    cand = gauss(1005.0, 0.001, 30, seed=10)  # real but +0.5% < 1% band
    c = compare(base, cand, direction="higher")
    assert c.p_value < 0.05
    assert c.verdict == "no-change"


def test_deterministic_for_a_seed() -> None:
    base = gauss(1000.0, 0.05, 20, seed=11)
    cand = gauss(1030.0, 0.05, 20, seed=12)
    a = compare(base, cand, direction="higher", seed=42)
    b = compare(base, cand, direction="higher", seed=42)
    assert a == b
    other = compare(base, cand, direction="higher", seed=43)
    assert (other.ci_low, other.ci_high) != (a.ci_low, a.ci_high)


def test_compare_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        compare([1.0], [], direction="higher")
    with pytest.raises(ValueError):
        compare([1.0], [0.0], direction="higher")
    with pytest.raises(ValueError):
        compare([1.0], [1.0], direction="sideways")  # type: ignore[arg-type]
