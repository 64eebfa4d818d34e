"""Sample statistics for benchmark measurements, in pure Python.

Two questions are answered here: "what did this series of samples look like"
(:func:`summarize`) and "is the candidate really better than the baseline"
(:func:`compare`). The second is answered conservatively: a percentile bootstrap
interval of the ratio of medians must clear a minimum effect on one side of 1.0
*and* a Mann-Whitney U test must agree, otherwise the verdict is ``no-change``.
Noise is never reported as a gain.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

Direction = Literal["higher", "lower"]
Verdict = Literal["faster", "slower", "no-change"]


class SampleStats(BaseModel):
    """Descriptive statistics of one series of samples."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # the policy of harness.records

    n: int
    median: float
    mean: float
    stdev: float
    """Sample standard deviation (n-1); 0.0 for a single sample."""
    min: float
    max: float
    iqr: float
    """Interquartile range, Q3 - Q1 (linear interpolation between order statistics)."""
    mad: float
    """Median absolute deviation from the median (unscaled)."""
    rel_spread: float
    """IQR relative to the median (0.02 means the middle half spans 2% of the median)."""


class Comparison(BaseModel):
    """Candidate against baseline: the ratio of medians, its interval and a verdict."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # the policy of harness.records

    direction: Direction
    baseline_median: float
    candidate_median: float
    speedup: float
    """Ratio of medians oriented so that > 1.0 always means the candidate is better."""
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    """Two-sided Mann-Whitney U p-value (normal approximation, tie-corrected)."""
    significant: bool
    verdict: Verdict
    min_effect: float
    resamples: int
    seed: int
    n_baseline: int
    n_candidate: int


def _finite(samples: Sequence[float], what: str) -> list[float]:
    values = [float(x) for x in samples]
    if not values:
        raise ValueError(f"{what}: no samples")
    if not all(math.isfinite(x) for x in values):
        raise ValueError(f"{what}: samples must be finite numbers")
    return values


def _quantile_sorted(xs: Sequence[float], q: float) -> float:
    """Quantile of already sorted data, linear interpolation (numpy's default)."""
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def _median_sorted(xs: Sequence[float]) -> float:
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2.0


def median(samples: Sequence[float]) -> float:
    """Median of a non-empty series."""
    return _median_sorted(sorted(_finite(samples, "median")))


def summarize(samples: Sequence[float]) -> SampleStats:
    """Describe a non-empty series of finite samples.

    Raises ``ValueError`` for an empty series or non-finite values.
    """
    xs = sorted(_finite(samples, "summarize"))
    n = len(xs)
    med = _median_sorted(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    iqr = _quantile_sorted(xs, 0.75) - _quantile_sorted(xs, 0.25)
    mad = _median_sorted(sorted(abs(x - med) for x in xs))
    rel = iqr / abs(med) if med else 0.0
    return SampleStats(
        n=n,
        median=med,
        mean=mean,
        stdev=math.sqrt(var),
        min=xs[0],
        max=xs[-1],
        iqr=iqr,
        mad=mad,
        rel_spread=rel,
    )


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U test of ``a`` against ``b``.

    Returns ``(U_a, p)``: the U statistic of ``a`` and the two-sided p-value from the
    normal approximation with tie correction and continuity correction. When every
    value is tied the test has no information and p is 1.0.
    """
    xs = _finite(a, "mann_whitney_u a")
    ys = _finite(b, "mann_whitney_u b")
    n1, n2 = len(xs), len(ys)
    pooled = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    n = n1 + n2
    rank_sum_a = 0.0
    tie_term = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0
        t = j - i + 1
        if t > 1:
            tie_term += t**3 - t
        for k in range(i, j + 1):
            if pooled[k][1] == 0:
                rank_sum_a += avg_rank
        i = j + 1
    u_a = rank_sum_a - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0.0:
        return u_a, 1.0
    z = (abs(u_a - mu) - 0.5) / math.sqrt(var)
    z = max(z, 0.0)
    return u_a, min(1.0, math.erfc(z / math.sqrt(2.0)))


def _ratio(num: float, den: float) -> float:
    if den > 0.0:
        return num / den
    return math.inf if num > 0.0 else 1.0


def bootstrap_ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``median(numerator) / median(denominator)``.

    Each side is resampled independently with replacement. Deterministic for a seed.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    num = list(numerator)
    den = list(denominator)
    rng = random.Random(seed)
    choices = rng.choices
    kn, kd = len(num), len(den)
    ratios = []
    for _ in range(resamples):
        mn = _median_sorted(sorted(choices(num, k=kn)))
        md = _median_sorted(sorted(choices(den, k=kd)))
        ratios.append(_ratio(mn, md))
    ratios.sort()
    alpha = 1.0 - confidence
    return _quantile_sorted(ratios, alpha / 2.0), _quantile_sorted(ratios, 1.0 - alpha / 2.0)


def compare(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    direction: Direction,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    min_effect: float = 0.01,
) -> Comparison:
    """Compare a candidate's samples with the baseline's.

    ``speedup`` is ``median(candidate) / median(baseline)`` when higher is better
    (throughput) and ``median(baseline) / median(candidate)`` when lower is better
    (latency), so a speedup above 1.0 always means the candidate is better.

    The result is ``significant`` only when the whole bootstrap interval lies beyond
    ``1 ± min_effect`` on one side *and* the Mann-Whitney p-value is below
    ``1 - confidence``; only then is the verdict ``faster`` or ``slower``.

    Raises ``ValueError`` for empty, non-finite or non-positive samples, or a bad
    ``direction``/``confidence``.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', not {direction!r}")
    base = _finite(baseline, "baseline")
    cand = _finite(candidate, "candidate")
    if min(base) <= 0.0 or min(cand) <= 0.0:
        raise ValueError("compare needs positive samples (a ratio of medians)")
    base_med = median(base)
    cand_med = median(cand)
    if direction == "higher":
        speedup = cand_med / base_med
        lo, hi = bootstrap_ratio_interval(
            cand, base, confidence=confidence, resamples=resamples, seed=seed
        )
    else:
        speedup = base_med / cand_med
        lo, hi = bootstrap_ratio_interval(
            base, cand, confidence=confidence, resamples=resamples, seed=seed
        )
    _, p = mann_whitney_u(cand, base)
    alpha = 1.0 - confidence
    if lo > 1.0 + min_effect and p < alpha:
        verdict: Verdict = "faster"
    elif hi < 1.0 - min_effect and p < alpha:
        verdict = "slower"
    else:
        verdict = "no-change"
    return Comparison(
        direction=direction,
        baseline_median=base_med,
        candidate_median=cand_med,
        speedup=speedup,
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        p_value=p,
        significant=verdict != "no-change",
        verdict=verdict,
        min_effect=min_effect,
        resamples=resamples,
        seed=seed,
        n_baseline=len(base),
        n_candidate=len(cand),
    )
