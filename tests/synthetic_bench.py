"""Test data: a deterministic, made-up bench run, for report tests and reviewing the HTML.

Nothing here runs an agent or a benchmark; samples come from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.bench.flame import parse_folded, render_diff_svg, render_svg, top_frames
from harness.bench.model import (AttemptRecord, BenchReport, CandidateReport, Machine, Measurement, Metric,
                                 ProfileArtifacts, Target, TestSummary, TimelineEntry, build_summary)
from harness.bench.stats import compare

_BASE_FOLDED = """\
main;run_bench;engine.submit;book.match;book.best_price 420
main;run_bench;engine.submit;book.match;level.pop_front 260
main;run_bench;engine.submit;book.match;trade.__init__ 180
main;run_bench;engine.submit;book.insert;bisect.insort 310
main;run_bench;engine.submit;order.__init__ 150
main;run_bench;engine.submit;validate;decimal.Decimal.__new__ 230
main;run_bench;feed.parse_line;str.split 170
main;run_bench;feed.parse_line;int 90
main;run_bench;report.emit;json.dumps 60
"""

# (name, status, speed ratio, noise, merge outcome, attempt statuses, tests failing)
_PLAN = [
    ("arena-allocator", "succeeded", 1.12, 0.01, "folded", ["succeeded"], 0),
    ("price-level-heap", "succeeded", 1.07, 0.012, "folded", ["failed", "succeeded"], 0),
    ("batch-matching", "succeeded", 1.008, 0.03, "not_improved", ["succeeded"], 0),
    ("lockfree-queue", "timed_out", None, 0.0, "not_run", ["timed_out"], 0),
    ("simd-parse", "succeeded", 1.09, 0.01, "failed_tests", ["succeeded"], 3),
    ("cython-hotpath", "crashed", None, 0.0, "not_run", ["crashed", "crashed", "crashed"], 0),
    ("order-id-interning", "succeeded", 1.04, 0.01, "conflicted", ["succeeded"], 0),
    ("slotted-classes", "succeeded", 0.96, 0.01, "not_improved", ["succeeded"], 0),
]

_REASONS = {
    "failed": "tests failed after edit (exit 1)",
    "timed_out": "timeout after 1800 s",
    "crashed": "agent exited with signal 9 (OOM)",
    "succeeded": None,
}


def _samples(rng: random.Random, mean: float, noise: float, n: int = 15) -> list[float]:
    return [round(rng.gauss(mean, mean * noise), 1) for _ in range(n)]


def _shift_profile(base: dict[str, int], name: str, ratio: float) -> dict[str, int]:
    """A candidate profile: the frames its strategy targets lose samples."""
    hot = {"arena-allocator": "__init__", "price-level-heap": "insort",
           "simd-parse": "parse_line", "order-id-interning": "validate",
           "batch-matching": "match", "slotted-classes": "engine.submit"}.get(name, "")
    out = {}
    for stack, count in base.items():
        factor = 1.0 / ratio if hot and hot in stack else 1.0
        if name == "slotted-classes" and "validate" in stack:
            factor = 1.4
        out[stack] = max(1, int(count * factor * 0.6 if factor < 1 else count * factor))
    return out


def _write_profile(out: Path, slug: str, stacks: dict[str, int], base: dict[str, int] | None,
                   title: str) -> ProfileArtifacts:
    prof = out / "profiles"
    prof.mkdir(parents=True, exist_ok=True)
    (prof / f"{slug}.folded").write_text(
        "".join(f"{s} {c}\n" for s, c in stacks.items()), encoding="utf-8")
    (prof / f"{slug}.svg").write_text(render_svg(stacks, title=title), encoding="utf-8")
    diff = None
    if base is not None:
        diff = f"profiles/{slug}.diff.svg"
        (out / diff).write_text(
            render_diff_svg(base, stacks, title=f"{title} vs baseline"), encoding="utf-8")
    return ProfileArtifacts(folded=f"profiles/{slug}.folded", svg=f"profiles/{slug}.svg",
                            diff_svg=diff, top_frames=top_frames(stacks, 8))


def synthetic_report(artifacts_dir: str | Path | None = None, *, seed: int = 0) -> BenchReport:
    """A plausible bench report of eight strategies on an order-matching engine.

    When ``artifacts_dir`` is given, folded stacks and flame graph SVGs are written
    under ``artifacts_dir/profiles/`` and referenced from the report.
    """
    rng = random.Random(seed)
    out = Path(artifacts_dir) if artifacts_dir is not None else None
    base_stacks = parse_folded(_BASE_FOLDED)
    base_mean = 100_000.0
    base_samples = _samples(rng, base_mean, 0.01)
    base_prof = _write_profile(out, "baseline", base_stacks, None, "baseline") if out else None
    baseline = Measurement.from_samples(base_samples, warmups_dropped=3, profile=base_prof)
    t0 = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
    timeline = [
        TimelineEntry(lane="baseline", label="bench", kind="bench", status="succeeded",
                      start=0.0, end=95.0),
        TimelineEntry(lane="baseline", label="profile", kind="profile", status="succeeded",
                      start=95.0, end=130.0),
    ]
    candidates = []
    for i, (name, status, ratio, noise, outcome, attempt_st, failing) in enumerate(_PLAN):
        task_id = f"t{i + 1:02d}-{name}"
        clock = 140.0 + 15.0 * i
        log = []
        for n, st in enumerate(attempt_st, start=1):
            dur = 1800.0 if st == "timed_out" else rng.uniform(400.0, 1300.0)
            log.append(AttemptRecord(
                number=n, status=st,
                exit_code=None if st == "timed_out" else int(st != "succeeded"),
                duration_s=round(dur, 1), reason=_REASONS[st],
                started_at=t0 + timedelta(seconds=clock),
                ended_at=t0 + timedelta(seconds=clock + dur)))
            timeline.append(TimelineEntry(
                lane=task_id, label=f"attempt {n}", kind="attempt" if n == 1 else "retry",
                status=st, start=round(clock, 1), end=round(clock + dur, 1)))
            clock += dur + 5.0
        tests = meas = cmp = None
        if status == "succeeded":
            tests = TestSummary(passed=212 - failing, failed=failing, skipped=4,
                                failing=[f"tests/test_book.py::test_fill_{k}"
                                         for k in range(failing)],
                                duration_s=41.5, ok=failing == 0)
            timeline.append(TimelineEntry(lane=task_id, label="tests", kind="tests",
                                          status="succeeded" if tests.ok else "failed",
                                          start=clock, end=clock + 42.0))
            clock += 45.0
            stacks = _shift_profile(base_stacks, name, ratio)
            prof = _write_profile(out, task_id, stacks, base_stacks, name) if out else None
            meas = Measurement.from_samples(_samples(rng, base_mean * ratio, noise),
                                            warmups_dropped=3, profile=prof)
            cmp = compare(base_samples, meas.samples, direction="higher", seed=seed)
            timeline.append(TimelineEntry(lane=task_id, label="bench", kind="bench",
                                          status="succeeded", start=clock, end=clock + 95.0))
        candidates.append(CandidateReport(
            name=name, task_id=task_id, branch=f"harness/demo-run/{task_id}",
            head_commit=f"{rng.getrandbits(160):040x}", status=status,
            exit_reason=_REASONS.get(attempt_st[-1]) if status != "succeeded" else "agent finished",
            attempts=len(attempt_st), retries=len(attempt_st) - 1, attempt_log=log,
            tests=tests, measurement=meas, comparison=cmp, merge_outcome=outcome,
            merge_detail={"conflicted": "book.py: both edited OrderBook.insert (lines 88-120)",
                          "failed_tests": "3 tests fail on the candidate branch",
                          "not_improved": "no significant gain"}.get(outcome)))
    end_agents = max(e.end for e in timeline)
    int_stacks = _shift_profile(_shift_profile(base_stacks, "arena-allocator", 1.12),
                                "price-level-heap", 1.07)
    int_prof = _write_profile(out, "integration", int_stacks, base_stacks,
                              "integration") if out else None
    int_meas = Measurement.from_samples(_samples(rng, base_mean * 1.19, 0.01),
                                        warmups_dropped=3, profile=int_prof)
    integration = CandidateReport(
        name="integration", task_id="integration", branch="harness/demo-run/integration",
        head_commit=f"{rng.getrandbits(160):040x}", status="succeeded", attempts=1,
        tests=TestSummary(passed=212, skipped=4, duration_s=43.0), measurement=int_meas,
        comparison=compare(base_samples, int_meas.samples, direction="higher", seed=seed),
        merge_outcome="folded", merge_detail="folded arena-allocator, price-level-heap")
    s = end_agents + 10.0
    timeline += [
        TimelineEntry(lane="integration", label="integrate", kind="integrate",
                      status="succeeded", start=s, end=s + 20.0),
        TimelineEntry(lane="gate", label="gate tests", kind="gate", status="succeeded",
                      start=s + 20.0, end=s + 65.0),
        TimelineEntry(lane="integration", label="bench", kind="bench", status="succeeded",
                      start=s + 65.0, end=s + 160.0),
        TimelineEntry(lane="integration", label="profile", kind="profile",
                      status="succeeded", start=s + 160.0, end=s + 190.0),
    ]
    return BenchReport(
        run_id="demo-run", created_at=t0,
        target=Target(name="matching-engine", path="examples/matching_engine",
                      base_commit="3f9c2e1d" + "0" * 32),
        spec={"metric": "orders_per_s", "samples": 15, "warmups": 3,
              "strategies": [p[0] for p in _PLAN]},
        metric=Metric(name="orders_per_s", unit="orders/s", direction="higher"),
        machine=Machine(hostname="bench-01", cpus=16, platform="Linux-6.1-x86_64",
                        python="3.11.9"),
        baseline=baseline, candidates=candidates, integration=integration,
        timeline=timeline, summary=build_summary(baseline, candidates, integration))
