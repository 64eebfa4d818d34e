"""The bench records: what one ``harness bench`` run measured, as frozen pydantic models.

``BenchReport`` is the top-level record written to ``report.json``. They follow the
one versioning policy of every record (see ``harness.records``): unknown keys are
read and dropped, every field added after version 1 has a default,
:func:`load_report` migrates known older versions before validation and refuses a
newer one.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import HarnessError
from ..records import ModelSpend
from ..versioning import version_problem

from .flame import FrameStat
from .stats import Comparison, SampleStats, summarize

SCHEMA_VERSION = 1

MergeOutcome = Literal[
    "folded", "conflicted", "rejected_by_gate", "not_improved", "not_run", "failed_tests"
]
TimelineKind = Literal["attempt", "retry", "tests", "bench", "profile", "integrate", "gate"]

# AgentResult statuses counted as "failed" in the summary (timeouts are counted apart;
# conflicts and gate rejections are counted from the merge outcome).
_FAILED_STATUSES = {
    "failed", "stalled", "crashed", "scope_violation", "dependency_failed", "cancelled",
}


class BenchRecordError(HarnessError, ValueError):
    """A bench record that cannot be read: missing, not JSON, invalid or too new."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the policy of harness.records


class Target(_Record):
    """What was benchmarked."""

    name: str
    path: str
    base_commit: str


class Metric(_Record):
    """The measured quantity, e.g. ``orders_per_s`` (higher) or ``p99_ms`` (lower)."""

    name: str
    unit: str = ""
    direction: Literal["higher", "lower"] = "higher"


class Machine(_Record):
    """Where the run happened; measurements only compare within one machine."""

    hostname: str
    cpus: int
    platform: str
    python: str

    @classmethod
    def current(cls) -> Machine:
        """Describe the machine this process runs on."""
        return cls(
            hostname=socket.gethostname(),
            cpus=os.cpu_count() or 1,
            platform=platform.platform(),
            python=sys.version.split()[0],
        )


class ProfileArtifacts(_Record):
    """Profile files of one measurement; paths are relative to the run's artifact dir."""

    folded: str | None = None
    svg: str | None = None
    diff_svg: str | None = None
    """Differential flame graph against the baseline (absent for the baseline)."""
    top_frames: list[FrameStat] = []


class Measurement(_Record):
    """Samples of the metric for one tree, after warm-ups were dropped."""

    samples: list[float]
    warmups_dropped: int = 0
    stats: SampleStats
    profile: ProfileArtifacts | None = None

    @classmethod
    def from_samples(cls, samples: Sequence[float], *, warmups_dropped: int = 0,
                     profile: ProfileArtifacts | None = None) -> Measurement:
        """Build a measurement, computing its statistics (``ValueError`` when empty)."""
        return cls(samples=list(samples), warmups_dropped=warmups_dropped,
                   stats=summarize(samples), profile=profile)


class TestSummary(_Record):
    """The candidate's test run, condensed."""

    __test__ = False  # not a pytest class

    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0
    failing: list[str] = []
    duration_s: float = 0.0
    ok: bool = True

    @classmethod
    def from_test_report(cls, report: Any) -> TestSummary:
        """Condense a ``harness.records.TestReport`` (or anything with its fields)."""
        return cls(passed=report.passed, failed=report.failed, errored=report.errored,
                   skipped=report.skipped, failing=list(report.failing),
                   duration_s=report.duration_s, ok=bool(report.ok))


class AttemptRecord(_Record):
    """One attempt of an agent at its strategy."""

    number: int
    status: str
    exit_code: int | None = None
    duration_s: float = 0.0
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    steps: int = 0
    """Steps the agent announced (::harness-step:: lines)."""

    @classmethod
    def from_attempt(cls, attempt: Any) -> AttemptRecord:
        """Copy the reportable fields of a ``harness.records.Attempt``."""
        return cls(number=attempt.number, status=_status(attempt.status),
                   exit_code=attempt.exit_code, duration_s=attempt.duration_s,
                   reason=attempt.reason, started_at=attempt.started_at,
                   ended_at=attempt.ended_at, steps=attempt.steps)


def total_spend(candidates: Iterable[CandidateReport | None]) -> ModelSpend | None:
    """The candidates' spend added up; None when none used a model."""
    return ModelSpend.total(c.spend for c in candidates if c is not None)


class CandidateReport(_Record):
    """One strategy (or the integration): how its agent ended and what it measured."""

    name: str
    task_id: str
    branch: str | None = None
    head_commit: str | None = None
    status: str
    """The AgentResult status: succeeded, failed, timed_out, crashed, scope_violation, ..."""
    exit_reason: str | None = None
    attempts: int = 1
    retries: int = 0
    attempt_log: list[AttemptRecord] = []
    tests: TestSummary | None = None
    measurement: Measurement | None = None
    comparison: Comparison | None = None
    reference: Measurement | None = None
    """Baseline samples taken alongside this candidate, when they are not the run's
    baseline (the integration is measured after the strategies, with its own)."""
    merge_outcome: MergeOutcome = "not_run"
    merge_detail: str | None = None
    spend: ModelSpend | None = None
    """Model calls, tokens and cost of its attempts; None when its agent used no model
    (and in reports written before spend was recorded)."""


class TimelineEntry(_Record):
    """One bar of the run's Gantt chart; times are seconds since the run started."""

    lane: str
    """A task id, or "baseline", "integration", "gate"."""
    label: str
    kind: TimelineKind
    status: str
    start: float
    end: float


class BenchSummary(_Record):
    """The headline: baseline against integrated result, and what happened to strategies."""

    baseline_median: float
    integrated_median: float | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    significant: bool = False
    verdict: Literal["faster", "slower", "no-change"] | None = None
    folded: int = 0
    conflicted: int = 0
    rejected_by_gate: int = 0
    failed_tests: int = 0
    not_improved: int = 0
    failed: int = 0
    timed_out: int = 0
    retried: int = 0


class BenchReport(_Record):
    """Everything one bench run recorded; serialized as ``report.json``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: datetime
    target: Target
    spec: dict[str, Any] = {}
    """The bench spec exactly as given."""
    metric: Metric
    machine: Machine
    baseline: Measurement
    candidates: list[CandidateReport] = []
    integration: CandidateReport | None = None
    timeline: list[TimelineEntry] = []
    summary: BenchSummary


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


INTEGRATE_POLICIES = {
    "faster": "strategies measured significantly faster",
    "not-slower": "every strategy whose tests pass, unless measured significantly slower",
}


def integrate_policy(report: BenchReport) -> str:
    """What the run folded into its integration, in words (from its spec)."""
    policy = (report.spec.get("bench") or {}).get("integrate", "faster")
    return INTEGRATE_POLICIES.get(policy, policy)


def build_summary(baseline: Measurement, candidates: Iterable[CandidateReport],
                  integration: CandidateReport | None) -> BenchSummary:
    """Count outcomes over the candidates and take the headline from the integration."""
    counts = dict.fromkeys(
        ("folded", "conflicted", "rejected_by_gate", "failed_tests", "not_improved",
         "failed", "timed_out", "retried"), 0)
    for c in candidates:
        if c.merge_outcome in counts:
            counts[c.merge_outcome] += 1
        if c.status in _FAILED_STATUSES:
            counts["failed"] += 1
        elif c.status == "timed_out":
            counts["timed_out"] += 1
        if c.retries > 0:
            counts["retried"] += 1
    cmp = integration.comparison if integration else None
    meas = integration.measurement if integration else None
    return BenchSummary(
        baseline_median=baseline.stats.median,
        integrated_median=meas.stats.median if meas else None,
        speedup=cmp.speedup if cmp else None,
        ci_low=cmp.ci_low if cmp else None,
        ci_high=cmp.ci_high if cmp else None,
        significant=cmp.significant if cmp else False,
        verdict=cmp.verdict if cmp else None,
        **counts,
    )


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older record's raw JSON up to the current version (none needed yet)."""
    return data


def load_report(path: str | Path) -> BenchReport:
    """Read ``report.json``; older schema versions are migrated.

    Raises ``BenchRecordError`` when the file is missing, not JSON, invalid, or written
    by a newer harness (a higher ``schema_version``).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchRecordError(f"{p}: no bench report here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchRecordError(f"{p}: not a readable JSON bench report ({exc})") from None
    if not isinstance(data, dict):
        raise BenchRecordError(f"{p}: a bench report is a JSON object")
    problem = version_problem(data, SCHEMA_VERSION)
    if problem:
        raise BenchRecordError(f"{p}: {problem}")
    try:
        return BenchReport.model_validate(_migrate(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top)"
        raise BenchRecordError(f"{p}: invalid bench report at {where}: {first['msg']}") from None


def save_report(report: BenchReport, path: str | Path) -> Path:
    """Write ``report`` as indented JSON, atomically (temp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(report.model_dump_json(indent=2))
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


__all__ = [
    "AttemptRecord", "BenchRecordError", "BenchReport", "BenchSummary", "CandidateReport",
    "Comparison", "FrameStat", "Machine", "Measurement", "Metric", "MergeOutcome",
    "ProfileArtifacts", "SampleStats", "Target", "TestSummary", "TimelineEntry", "integrate_policy",
    "TimelineKind", "build_summary", "load_report", "save_report", "total_spend", "SCHEMA_VERSION",
]
