"""Bench records: strict, versioned, round-tripping, older records still readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.bench.model import (
    BenchRecordError,
    BenchReport,
    Measurement,
    load_report,
    save_report,
)
from harness.errors import HarnessError
from synthetic_bench import synthetic_report

FIXTURE = Path(__file__).parent / "fixtures" / "bench_report_v1_minimal.json"


def test_schema_version_is_first_field() -> None:
    assert next(iter(BenchReport.model_fields)) == "schema_version"
    dumped = json.loads(synthetic_report().model_dump_json())
    assert next(iter(dumped)) == "schema_version" and dumped["schema_version"] == 1


def test_old_record_with_missing_optional_fields_loads() -> None:
    report = load_report(FIXTURE)
    assert report.run_id == "old-run"
    assert report.integration is None and report.timeline == []
    c = report.candidates[0]
    assert c.attempts == 1 and c.retries == 0 and c.merge_outcome == "not_run"
    assert c.measurement is None and c.tests is None
    assert report.summary.integrated_median is None and report.summary.failed == 1


def test_round_trip_json_model_json_is_identical(tmp_path: Path) -> None:
    report = synthetic_report(tmp_path)
    path = save_report(report, tmp_path / "report.json")
    text = path.read_text()
    again = load_report(path)
    assert again == report
    assert again.model_dump_json(indent=2) + "\n" == text
    assert load_report(tmp_path) == report  # a run directory works too


def test_keys_from_a_newer_writer_are_read_and_dropped(tmp_path: Path) -> None:
    """The one versioning policy (harness.records): unknown keys do not break a reader."""
    data = json.loads(FIXTURE.read_text())
    data["surprise"] = 1
    data["metric"]["added_later"] = {"nested": True}
    (tmp_path / "report.json").write_text(json.dumps(data))
    report = load_report(tmp_path)
    assert report == BenchReport.model_validate(json.loads(FIXTURE.read_text()))
    assert "surprise" not in json.loads(report.model_dump_json())


def test_models_are_frozen() -> None:
    m = Measurement.from_samples([1.0, 2.0, 3.0], warmups_dropped=1)
    assert m.stats.median == 2.0
    with pytest.raises(ValidationError):
        m.warmups_dropped = 5  # type: ignore[misc]


def test_load_errors_are_one_line_harness_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchRecordError, match="no bench report"):
        load_report(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(HarnessError):
        load_report(bad)
    newer = json.loads(FIXTURE.read_text())
    newer["schema_version"] = 99
    bad.write_text(json.dumps(newer))
    with pytest.raises(BenchRecordError, match="newer"):
        load_report(bad)
    broken = json.loads(FIXTURE.read_text())
    del broken["metric"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(BenchRecordError, match="metric"):
        load_report(bad)


def test_summary_counts() -> None:
    s = synthetic_report().summary
    assert (s.folded, s.conflicted, s.failed_tests, s.not_improved) == (2, 1, 1, 2)
    assert (s.failed, s.timed_out, s.retried) == (1, 1, 2)
    assert s.significant and s.verdict == "faster" and s.ci_low <= s.speedup <= s.ci_high
