"""JUnit XML to TestReport: pytest-style files with failures, errors and skips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.records import SandboxResult, TestReport
from harness.gate.junit import (JUNIT_NAME, build_report, flaky_after_rerun, parse_junit, passes, node_id,
                                wrap_command)

XUNIT1 = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="2" failures="2" skipped="2" tests="8" time="0.151">
 <testcase classname="tests.test_a.TestK" name="test_ok" file="tests/test_a.py" line="2" time="0.001"/>
 <testcase classname="tests.test_a.TestK" name="test_bad" file="tests/test_a.py" line="3" time="0.002">
  <failure message="assert 0">assert 0</failure>
 </testcase>
 <testcase classname="tests.test_a.TestK" name="test_p[2-x]" file="tests/test_a.py" line="4" time="0.001">
  <failure message="assert 2 == 1">x</failure>
  <error message="teardown">boom in teardown</error>
 </testcase>
 <testcase classname="tests.test_a" name="test_fixture_err" file="tests/test_a.py" line="10" time="0.001">
  <error message="failed on setup">ValueError</error>
 </testcase>
 <testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="11" time="0.000">
  <skipped type="pytest.skip" message="no">no</skipped>
 </testcase>
 <testcase classname="tests.test_a" name="test_xf" file="tests/test_a.py" line="13" time="0.001">
  <skipped type="pytest.xfail" message=""/>
 </testcase>
 <testcase classname="" name="tests.test_coll" file="tests/test_coll.py" time="0.000">
  <error message="collection failure">ImportError</error>
 </testcase>
 <testcase classname="tests.sub.test_b" name="test_fine" file="tests/sub/test_b.py" line="1" time="0.001"/>
</testsuite>
</testsuites>
"""

XUNIT2_SINGLE_SUITE = """<testsuite name="pytest" tests="3" time="1.5">
 <testcase classname="pkg.test_m.TestOuter" name="test_one" time="0.1"/>
 <testcase classname="pkg.test_m" name="test_two" time="0.1"><failure message="no"/></testcase>
 <testcase classname="test_top" name="test_three" time="0.1"><skipped/></testcase>
</testsuite>
"""


def test_pytest_xunit1_counts_and_node_ids():
    j = parse_junit(XUNIT1)
    assert j.passed == ["tests/test_a.py::TestK::test_ok", "tests/sub/test_b.py::test_fine"]
    assert j.failed == ["tests/test_a.py::TestK::test_bad", "tests/test_a.py::TestK::test_p[2-x]"]
    # a failure with a teardown error counts once, as failed
    assert j.errored == ["tests/test_a.py::test_fixture_err", "tests/test_coll.py"]
    assert j.skipped == ["tests/test_a.py::test_skip", "tests/test_a.py::test_xf"]
    assert j.failing == j.failed + j.errored
    assert j.duration_s == pytest.approx(0.151)


def test_xunit2_without_file_attribute_uses_the_tree_or_the_case_of_names(tmp_path):
    j = parse_junit(XUNIT2_SINGLE_SUITE.encode())
    assert j.passed == ["pkg/test_m.py::TestOuter::test_one"]
    assert j.failed == ["pkg/test_m.py::test_two"] and j.skipped == ["test_top.py::test_three"]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "test_m.py").write_text("")
    assert node_id("pkg.test_m.TestOuter", "test_one", root=tmp_path) == "pkg/test_m.py::TestOuter::test_one"
    assert node_id("", "lonely") == "lonely"


@pytest.mark.parametrize("bad", ["", "<html/>", "<testsuite>"])
def test_not_junit_is_a_value_error(bad):
    with pytest.raises(ValueError):
        parse_junit(bad)


def _result(code: int | None, **kw) -> SandboxResult:
    return SandboxResult(exit_code=code, duration_s=0.25, **kw)


def test_report_from_junit_file_or_from_the_exit_code(tmp_path):
    (tmp_path / JUNIT_NAME).write_text(XUNIT1)
    r = build_report("python3 -m pytest -q", _result(1), tmp_path, "c0ffee")
    assert (r.source, r.passed, r.failed, r.errored, r.skipped) == ("junit", 2, 2, 2, 2)
    assert r.commit == "c0ffee" and not r.ok and len(r.failing) == 4
    # a command that is not pytest is judged by its exit code, whatever lies around
    r = build_report("make check", _result(2), tmp_path, "c0ffee")
    assert (r.source, r.failed, r.failing, r.reason) == ("exit_code", 1, ["make check"], "exit code 2")
    assert build_report("make check", _result(0), tmp_path, None).ok
    t = build_report("make check", _result(None, timed_out=True, reason="timeout"), tmp_path, None)
    assert not t.ok and t.reason == "timeout"
    # pytest that wrote no JUnit file (say it could not start): the exit code decides
    assert build_report("pytest", _result(4), tmp_path / "nowhere", None).source == "exit_code"


def test_flaky_means_failed_then_passed_when_run_again():
    first = TestReport(source="junit", exit_code=1, failed=2, passed=3, failing=["t::a", "t::b"])
    again = TestReport(source="junit", exit_code=1, failed=1, passed=1, failing=["t::b"])
    assert flaky_after_rerun(first, again) == ["t::a"]
    assert flaky_after_rerun(first, TestReport(source="junit", exit_code=0, passed=2)) == ["t::a", "t::b"]
    # the rerun did not run them (nothing passed): nothing is proven flaky
    assert flaky_after_rerun(first, TestReport(source="junit", exit_code=1, failing=["t::b"])) == []
    assert passes(TestReport(exit_code=1, failed=1, failing=["t::a"]), {"t::a"})
    assert not passes(TestReport(exit_code=1, failed=2, failing=["t::a", "t::b"]), {"t::a"})
    assert not passes(TestReport(exit_code=2, failed=1, failing=["t::a"]), {"t::a"})


def test_wrapped_pytest_writes_junit_into_its_workspace_and_reruns_only_failures(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_no():\n    assert 0\n")
    cmd = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q"
    argv = wrap_command(cmd)
    assert argv[:2] == ["sh", "-c"] and argv[-1] == cmd
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    first = build_report(cmd, _result(proc.returncode), tmp_path, None)
    assert (first.source, first.passed, first.failing) == ("junit", 1, ["test_x.py::test_no"])
    (tmp_path / JUNIT_NAME).unlink()
    proc = subprocess.run(wrap_command(cmd, rerun=first.failing), cwd=tmp_path, capture_output=True, text=True)
    again = build_report(cmd, _result(proc.returncode), tmp_path, None)
    assert (again.passed, again.failing) == (0, ["test_x.py::test_no"])  # only the failure ran
    assert wrap_command("make test") == ["sh", "-c", "make test"]
    assert Path(tmp_path / JUNIT_NAME).is_file()
