"""A small bench over four strategies, end to end, with the local sandbox."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from gitutil import harness
from harness.bench.model import load_report
from harness.bench.runner import run_bench
from harness.bench.summary import summary_text


def _target(tmp_path, strategies=None, spec_extra="", extra_tests=""):
    t = tmp_path / "target"
    (t / "tests").mkdir(parents=True)
    # The metric follows the size of the work ("faster" strategies make it smaller), with
    # the same small spread, sample by sample, on every side: these tests check what the
    # harness decides from its samples, not how fast this machine is today (real timings
    # are the demo's and scripts/perf's).
    (t / "work.py").write_text("LOOPS = 1500000\n")
    (t / "extra.py").write_text("CUT = 0\n")
    (t / "pad.py").write_text("PAD = 0\n")
    (t / "bench.py").write_text(
        "import json, pathlib\nfrom work import LOOPS\nfrom extra import CUT\nfrom pad import PAD\n"
        "seen = pathlib.Path('.samples')  # this side's scratch worktree counts its samples\n"
        "n = int(seen.read_text()) if seen.exists() else 0\nseen.write_text(str(n + 1))\n"
        "spread = [0.0, 0.01, -0.01, 0.02, -0.02, 0.005, -0.005, 0.015][n % 8]\n"
        "print('noise on stdout')\n"
        "print(json.dumps({'metric': 'runs_per_sec', 'value': 1e6 / max(LOOPS - CUT + PAD, 1000) * (1 + spread)}))\n")
    (t / "tests" / "test_work.py").write_text(
        "from work import LOOPS\nfrom extra import CUT\n\n"
        "def test_positive():\n    assert LOOPS > 0\n\n"
        "def test_cut():\n    assert CUT >= 0\n" + extra_tests)
    s = tmp_path / "strategies"
    s.mkdir()

    def strategy(name, command, scope, **extra):
        lines = [f'name = "{name}"', f'prompt = "make it faster ({name})"',
                 f"command = '''{command}'''", f"write_scope = {json.dumps(scope)}"]
        lines += [f"{k} = {v}" for k, v in extra.items()]
        (s / f"{name}.toml").write_text("\n".join(lines) + "\n")

    for name, (command, scope, extra) in (strategies or {
        "smaller-work": ("echo 'LOOPS = 500000' > work.py", ["work.py"], {}),
        "retry-once": ('test "$HARNESS_ATTEMPT" -ge 2 || { echo "first attempt fails" >&2; exit 1; }; '
                       "echo 'CUT = 750000' > extra.py", ["extra.py"], {"retries": 1}),
        "breaks-tests": ("echo 'LOOPS = 0' > work.py", ["work.py"], {}),
        "hangs": ("sleep 60", ["work.py"], {"timeout_s": 1.5}),
    }).items():
        strategy(name, command, scope, **extra)
    spec = tmp_path / "bench.toml"
    spec.write_text(f"""
[bench]
name = "tiny"
target = "target"
strategies = ["strategies/*.toml"]
test_cmd = "python3 -m pytest -q -p no:cacheprovider tests"
bench_cmd = "python3 bench.py"
metric = "runs_per_sec"
unit = "runs/s"
repeats = 7
warmups = 1
sandbox = "local"
max_parallel = 4
{spec_extra}
""")
    return spec


def test_small_bench_records_retries_exit_reasons_and_merge_outcomes(tmp_path):
    strategies = {
        "smaller-work": ("echo 'LOOPS = 500000' > work.py", ["work.py"], {}),
        "retry-once": ('test "$HARNESS_ATTEMPT" -ge 2 || { echo "first attempt fails" >&2; exit 1; }; '
                       "echo 'CUT = 750000' > extra.py", ["extra.py"], {"retries": 1}),
        "breaks-tests": ("echo 'LOOPS = 0' > work.py", ["work.py"], {}),
        "hangs": ("sleep 60", ["work.py"], {"timeout_s": 1.5}),
        "bad-metric": ("""echo 'print("{\\"metric\\": \\"runs_per_sec\\", \\"value\\": -1}")' > bench.py""",
                       ["bench.py"], {}),
    }
    spec = _target(tmp_path, strategies, spec_extra='integrate = "not-slower"')
    lines: list[str] = []
    report, html = run_bench(spec, progress=lines.append, run_id="b1",
                             cache_dir=tmp_path / "cache")
    by = {c.task_id: c for c in report.candidates}
    assert set(by) == {"smaller-work", "retry-once", "breaks-tests", "hangs", "bad-metric"}
    bad = by["bad-metric"]
    assert bad.tests.ok and bad.measurement is None and bad.merge_outcome == "not_run"
    assert "runs_per_sec = -1.0; comparisons need a positive finite value" in bad.merge_detail

    assert by["retry-once"].attempts == 2 and by["retry-once"].retries == 1
    assert [a.status for a in by["retry-once"].attempt_log] == ["failed", "succeeded"]
    assert by["retry-once"].attempt_log[0].reason == "exit code 1"
    assert by["hangs"].status == "timed_out" and by["hangs"].exit_reason == "timeout"
    assert by["hangs"].merge_outcome == "not_run"
    assert by["breaks-tests"].merge_outcome == "failed_tests"
    assert by["breaks-tests"].tests is not None and not by["breaks-tests"].tests.ok
    assert any("test_positive" in t for t in by["breaks-tests"].tests.failing)

    for name in ("smaller-work", "retry-once"):
        c = by[name]
        assert c.tests.ok and len(c.measurement.samples) == 7
        assert c.comparison.n_baseline == c.comparison.n_candidate == 7, c.comparison
        assert c.comparison.verdict == "faster" and c.merge_outcome == "folded"
    assert report.integration is not None, lines
    assert report.summary.folded == 2 and report.summary.retried == 1
    assert report.summary.timed_out == 1 and report.summary.failed_tests == 1
    assert len(report.baseline.samples) == 7 and report.baseline.warmups_dropped == 1

    # the record round-trips and the page parses
    again = load_report(html.parent / "report.json")
    assert again == report
    HTMLParser().feed(html.read_text())
    assert "smaller-work" in html.read_text()
    kinds = {e.kind for e in report.timeline}
    assert {"attempt", "retry", "tests", "bench", "integrate", "gate"} <= kinds
    assert any("round 7/7" in line for line in lines)

    # the report rebuilds from report.json, and two runs compare, through the CLI
    html.unlink()
    proc = harness("bench", "report", "b1", "--repo", report.target.path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(html) and html.exists()
    proc = harness("bench", "compare", "b1", "b1", "--repo", report.target.path,
                   "--html", str(tmp_path / "cmp.html"))
    assert proc.returncode == 0 and "baseline median" in proc.stdout
    HTMLParser().feed((tmp_path / "cmp.html").read_text())
    assert harness("bench", "report", "nope", "--repo", report.target.path).returncode == 2


def test_not_slower_policy_folds_the_neutral_and_shows_conflict_and_gate_rejection(tmp_path):
    """integrate = "not-slower": a strategy within noise is folded, a slower one is
    not; of two faster ones on the same line the slower conflicts; of two that pass
    alone but not together the gate rejects the one folded later (the slower)."""
    spec = _target(tmp_path, {
        "smaller-work": ("echo 'LOOPS = 150000' > work.py", ["work.py"], {}),       # x10
        "cut-more": ("echo 'CUT = 1000000' > extra.py", ["extra.py"], {}),         # x3; with x10: no work left
        "smaller-work-too": ("echo 'LOOPS = 750000' > work.py", ["work.py"], {}),  # x2, same line as x10
        "neutral": ("echo '# tidy' >> pad.py", ["pad.py"], {}),                    # x1
        "slower": ("echo 'PAD = 3000000' > pad.py", ["pad.py"], {}),               # x1/3
    }, spec_extra='integrate = "not-slower"\nmin_effect = 0.25',
        extra_tests="\ndef test_work_left():\n    assert LOOPS - CUT > 0\n")
    lines: list[str] = []
    report, html = run_bench(spec, progress=lines.append, run_id="b2", cache_dir=tmp_path / "cache")
    by = {c.task_id: c for c in report.candidates}

    assert by["slower"].comparison.verdict == "slower" and by["slower"].merge_outcome == "not_improved"
    assert not by["neutral"].comparison.significant and by["neutral"].merge_outcome == "folded"
    assert by["smaller-work"].merge_outcome == "folded"
    assert by["smaller-work-too"].merge_outcome == "conflicted"
    assert "work.py" in by["smaller-work-too"].merge_detail
    assert by["cut-more"].merge_outcome == "rejected_by_gate"
    assert "test_work_left" in by["cut-more"].merge_detail
    assert by["cut-more"].merge_detail.endswith("together with smaller-work")  # the pair, named
    assert by["smaller-work-too"].merge_detail == "conflict in work.py with smaller-work"
    s = report.summary
    assert (s.folded, s.conflicted, s.rejected_by_gate, s.not_improved) == (2, 1, 1, 1)
    assert report.integration is not None and s.significant and s.speedup > 2
    text = summary_text(report, html)
    assert "every strategy whose tests pass, unless measured significantly slower" in text
    assert "unless measured significantly slower" in html.read_text()


def test_clean_stale_leaves_a_measuring_bench_alone(tmp_path):
    """While the bench measures in its scratch worktrees it holds its run's lock, so a
    `harness clean --stale` meanwhile removes nothing of it."""
    import threading

    spec = _target(tmp_path, {"neutral": ("echo '# tidy' >> pad.py", ["pad.py"], {})}, spec_extra="")
    gate = tmp_path / "measuring"
    text = spec.read_text().replace('bench_cmd = "python3 bench.py"',
                                    f'bench_cmd = "touch {gate}; while [ ! -e {gate}.go ]; do sleep 0.05; done; '
                                    'python3 bench.py"').replace("repeats = 7", "repeats = 3")
    spec.write_text(text)
    result: dict = {}
    bench = threading.Thread(target=lambda: result.update(
        zip(("report", "html"), run_bench(spec, run_id="b3", cache_dir=tmp_path / "cache"))))
    bench.start()
    try:
        for _ in range(1200):
            if gate.exists() or not bench.is_alive():
                break
            threading.Event().wait(0.05)
        assert gate.exists(), "the bench never reached its measurement"
        target = tmp_path / "cache"
        repo = next(p.parent for p in target.rglob(".git") if p.is_dir())
        trees = sorted((repo / ".git/harness/worktrees/b3").iterdir())
        assert trees, "the bench measures in scratch worktrees of its run"
        swept = harness("clean", "--stale", "--repo", str(repo))
        assert swept.returncode == 0, swept.stderr
        assert sorted((repo / ".git/harness/worktrees/b3").iterdir()) == trees
    finally:
        (tmp_path / "measuring.go").touch()
        bench.join(timeout=300)
    assert result["report"].baseline.samples
