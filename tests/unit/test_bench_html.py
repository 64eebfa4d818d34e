"""The bench report page: parses, carries every strategy, charts and escaping."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

from harness.bench.flame import render_diff_svg, render_svg
from harness.bench.html import compare_reports, render_compare_html, render_html, write_report
from harness.bench.model import (
    AttemptRecord,
    BenchReport,
    CandidateReport,
    Machine,
    Measurement,
    Metric,
    ProfileArtifacts,
    Target,
    TestSummary,
    TimelineEntry,
    build_summary,
    load_report,
    save_report,
)
from harness.bench.stats import compare
from harness.bench.summary import summary_text
from harness.records import ModelSpend

VOID = {"meta", "br", "hr", "img", "input", "link"}
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class TreeChecker(HTMLParser):
    """Collects tags, classes, text and checks that elements nest and close."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [a for _, a in self.starts if cls in (a.get("class") or "").split()]


def parse(html: str) -> TreeChecker:
    p = TreeChecker()
    p.feed(html)
    p.close()
    assert p.errors == [] and p.stack == []
    return p


def samples(mean: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, mean * 0.01) for _ in range(12)]


def attempt(n: int, status: str) -> AttemptRecord:
    return AttemptRecord(number=n, status=status, exit_code=0 if status == "succeeded" else 1,
                         duration_s=10.0, started_at=T0, ended_at=T0)


def make_report(artifacts: Path | None = None) -> BenchReport:
    base = samples(1000.0, 1)
    stacks = {"main;work": 80, "main;idle": 20}
    cand_stacks = {"main;work": 50, "main;idle": 20}
    profile = None
    if artifacts is not None:
        (artifacts / "p").mkdir(parents=True, exist_ok=True)
        (artifacts / "p/base.svg").write_text(render_svg(stacks, title="baseline"))
        (artifacts / "p/a.diff.svg").write_text(render_diff_svg(stacks, cand_stacks, title="a"))
        profile = ProfileArtifacts(svg="p/base.svg")
    baseline = Measurement.from_samples(base, warmups_dropped=2, profile=profile)

    def measured(mean: float, seed: int, diff: str | None = None):
        s = samples(mean, seed)
        prof = ProfileArtifacts(diff_svg=diff) if diff else None
        return (Measurement.from_samples(s, profile=prof),
                compare(base, s, direction="higher"))

    m1, c1 = measured(1100.0, 2, "p/a.diff.svg" if artifacts else None)
    m3, c3 = measured(1003.0, 3, "p/missing.diff.svg")
    candidates = [
        CandidateReport(name="fast-path", task_id="t1", status="succeeded", attempts=2,
                        retries=1, attempt_log=[attempt(1, "failed"), attempt(2, "succeeded")],
                        tests=TestSummary(passed=10), measurement=m1, comparison=c1,
                        merge_outcome="folded"),
        CandidateReport(name="too-slow", task_id="t2", status="timed_out",
                        exit_reason="timeout after 60 s", attempt_log=[attempt(1, "timed_out")],
                        merge_outcome="not_run"),
        CandidateReport(name="<script>alert(1)</script>", task_id="t3", status="succeeded",
                        attempt_log=[attempt(1, "succeeded")], measurement=m3, comparison=c3,
                        tests=TestSummary(passed=9, failed=1, failing=["t::x"], ok=False),
                        merge_outcome="failed_tests", merge_detail="a & b <fail>"),
    ]
    mi, ci = measured(1090.0, 4)
    integration = CandidateReport(name="integration", task_id="integration",
                                  status="succeeded", measurement=mi, comparison=ci,
                                  merge_outcome="folded")
    timeline = [
        TimelineEntry(lane="baseline", label="bench", kind="bench", status="succeeded",
                      start=0, end=20),
        TimelineEntry(lane="t1", label="attempt 1", kind="attempt", status="failed",
                      start=20, end=80),
        TimelineEntry(lane="t1", label="attempt 2", kind="retry", status="succeeded",
                      start=85, end=140),
        TimelineEntry(lane="t1", label="bench", kind="bench", status="succeeded",
                      start=140, end=160),
        TimelineEntry(lane="t2", label="attempt 1", kind="attempt", status="timed_out",
                      start=20, end=200),
        TimelineEntry(lane="t3", label="attempt 1", kind="attempt", status="succeeded",
                      start=22, end=90),
        TimelineEntry(lane="integration", label="integrate", kind="integrate",
                      status="succeeded", start=200, end=210),
        TimelineEntry(lane="gate", label="gate", kind="gate", status="succeeded",
                      start=210, end=230),
    ]
    return BenchReport(
        run_id="r1", created_at=T0,
        target=Target(name="engine", path="examples/engine", base_commit="b" * 40),
        spec={"samples": 12}, metric=Metric(name="ops", unit="ops/s"),
        machine=Machine(hostname="h", cpus=2, platform="Linux", python="3.11"),
        baseline=baseline, candidates=candidates, integration=integration,
        timeline=timeline, summary=build_summary(baseline, candidates, integration))


def test_page_parses_and_names_every_strategy(tmp_path: Path) -> None:
    html = render_html(make_report(tmp_path), artifacts_dir=tmp_path)
    p = parse(html)
    text = "".join(p.text)
    for name in ("fast-path", "too-slow", "<script>alert(1)</script>", "integration"):
        assert name in text
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_strategy_names_and_details_are_escaped(tmp_path: Path) -> None:
    html = render_html(make_report(tmp_path), artifacts_dir=tmp_path)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; b &lt;fail&gt;" in html
    assert not [t for t, _ in parse(html).starts if t == "script"]


def test_chart_has_one_bar_per_measured_candidate_and_integration(tmp_path: Path) -> None:
    p = parse(render_html(make_report(tmp_path), artifacts_dir=tmp_path))
    assert len(p.with_class("bar")) == 3  # fast-path, the <script> one, integration


def test_timeline_has_a_bar_per_attempt_and_retries_marked(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    p = parse(render_html(report, artifacts_dir=tmp_path))
    bars = p.with_class("tl-bar")
    assert len(bars) == len(report.timeline)
    attempts = [b for b in bars if b["data-kind"] in ("attempt", "retry")]
    assert len(attempts) == sum(len(c.attempt_log) for c in report.candidates)
    retry = [b for b in bars if b["data-kind"] == "retry"]
    assert len(retry) == 1 and retry[0].get("stroke-dasharray")


def test_flame_graphs_inlined_or_noted(tmp_path: Path) -> None:
    html = render_html(make_report(tmp_path), artifacts_dir=tmp_path)
    p = parse(html)
    assert len(p.with_class("flame")) == 2  # baseline and fast-path's diff
    assert "missing" in html and "p/missing.diff.svg" in html
    assert "No integration flame graph was recorded" in html


def test_unsafe_svg_artifact_is_not_inlined(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    (tmp_path / "p/base.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>')
    html = render_html(report, artifacts_dir=tmp_path)
    assert "onload" not in html and "not a plain SVG" in html


def test_write_report_writes_both_files(tmp_path: Path) -> None:
    json_path, html_path = write_report(make_report(tmp_path), tmp_path / "out")
    assert json_path.name == "report.json" and html_path.name == "report.html"
    parse(html_path.read_text())


def test_compare_text_and_html() -> None:
    a = make_report()
    b = a.model_copy(update={"run_id": "r2"})
    text = compare_reports(a, b)
    assert "r1" in text and "r2" in text and "fast-path" in text and "too-slow" in text
    assert "B vs A (integrated): x1.000" in text
    html = render_compare_html(a, b)
    p = parse(html)
    assert "<script>" not in html and "fast-path" in "".join(p.text)


def test_minimal_report_renders(tmp_path: Path) -> None:
    full = make_report()
    bare = full.model_copy(update={
        "candidates": [], "integration": None, "timeline": [],
        "summary": build_summary(full.baseline, [], None)})
    p = parse(render_html(bare, artifacts_dir=tmp_path))
    assert p.with_class("bar") == [] and p.with_class("tl-bar") == []
    lower = full.model_copy(update={"metric": Metric(name="p99", unit="ms", direction="lower")})
    assert "lower is better" in render_html(lower, artifacts_dir=tmp_path)


def test_integration_is_drawn_against_its_own_reference_baseline(tmp_path: Path) -> None:
    """The integration is compared with a baseline re-measured beside it: its bar starts
    there (a dashed mark) and its interval is that reference times the speedup's."""
    report = make_report(tmp_path)
    ref_samples = [900.0 + i for i in range(12)]
    int_samples = [1800.0 + 2 * i for i in range(12)]
    cmp = compare(ref_samples, int_samples, direction="higher")
    integ = report.integration.model_copy(update={
        "measurement": Measurement.from_samples(int_samples), "comparison": cmp,
        "reference": Measurement.from_samples(ref_samples)})
    report = report.model_copy(update={"integration": integ})
    p = parse(render_html(report, artifacts_dir=tmp_path))
    [mark] = p.with_class("ref")
    text = "".join(p.text)
    ref_median = integ.reference.stats.median
    assert ref_median == 905.5 and "against its baseline re-measured beside it, 905.5" in text
    assert mark["x1"] == mark["x2"]
    [bar] = [a for a in p.with_class("bar")][-1:]
    assert abs(float(bar["x"]) - float(mark["x1"])) < 0.11  # the bar starts at the reference


def test_model_spend_per_strategy_beside_retries_in_summary_and_page(tmp_path: Path) -> None:
    report = make_report()
    plain = summary_text(report, tmp_path / "report.html")
    assert "  model  " not in plain and "tok $" not in plain  # no strategy used a model: no column
    assert "model tokens" not in render_html(report, artifacts_dir=tmp_path)
    spent = [ModelSpend(calls=3, input_tokens=1200, output_tokens=300, cost_usd=0.0123),
             ModelSpend(calls=1, input_tokens=50, output_tokens=0, cost_usd=0.0005, refused=2), None]
    report = report.model_copy(update={"candidates": [c.model_copy(update={"spend": s})
                                                      for c, s in zip(report.candidates, spent)]})
    text = summary_text(report, tmp_path / "report.html")
    assert "  model        4 call(s), 1,250 in / 300 out tokens, $0.0128 over every strategy" in text
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("    ")}
    assert "1 retry" in rows["fast-path"] and "1,500 tok $0.0123" in rows["fast-path"]
    assert "0 retries" in rows["too-slow"] and "50 tok $0.0005" in rows["too-slow"]
    assert "no model" in rows["<script>alert(1)</script>"]
    page = "".join(parse(render_html(report, artifacts_dir=tmp_path)).text)
    assert "model tokens / cost" in page
    assert "1,500" in page and "$0.0123" in page and "2 refused" in page
    # the field is optional: a report written before it was recorded reads as it did
    saved = save_report(report, tmp_path / "report.json")
    assert load_report(saved).candidates[0].spend == spent[0]
    old = json.loads(saved.read_text())
    for c in old["candidates"]:
        c.pop("spend")
    saved.write_text(json.dumps(old))
    assert all(c.spend is None for c in load_report(saved).candidates)
