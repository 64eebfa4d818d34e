"""Test results as data: JUnit XML to a TestReport, and the pytest plumbing.

A test command that mentions pytest is run with `--junitxml` pointing into its own
workspace (`.harness-junit.xml`, read back from the host after the run; the
workspace is a throwaway worktree, so the file is never committed) and
`-o junit_family=xunit1`, whose `file` attribute lets the ids be pytest node ids
("tests/test_x.py::TestClass::test_name"). Both go through PYTEST_ADDOPTS, set by
the shell from its own $PWD, so the path is right in any sandbox and no argument
of the user's command line has to be parsed. Any other command is judged by its
exit code.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..records import SandboxResult, TestReport

JUNIT_NAME = ".harness-junit.xml"


@dataclass
class JUnitResult:
    """What a JUnit file says, test by test."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def failing(self) -> list[str]:
        return self.failed + [t for t in self.errored if t not in self.failed]


def is_pytest(command: str) -> bool:
    return "pytest" in command


def node_id(classname: str, name: str, file: str | None = None, root: Path | None = None) -> str:
    """A pytest-style id, "path/to/file.py::Class::name", from a JUnit testcase.

    With `file` (xunit1) the module part of `classname` is known exactly; without
    it the longest dotted prefix that is a file under `root` is the module, and
    failing that the parts before the first capitalised one."""
    parts = [p for p in classname.split(".") if p]
    if file:
        if not classname:  # a collection error names the module as the test
            return file
        module = file[:-3].replace("/", ".") if file.endswith(".py") else file.replace("/", ".")
        rest = classname[len(module):].lstrip(".") if classname.startswith(module) else ""
        return "::".join([file, *[p for p in rest.split(".") if p], name])
    if not parts:
        return name
    cut = None
    if root is not None:
        for i in range(len(parts), 0, -1):
            if (root / Path(*parts[:i])).with_suffix(".py").is_file():
                cut = i
                break
    if cut is None:
        cut = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts)) or len(parts)
    return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])


def parse_junit(data: str | bytes, root: Path | None = None) -> JUnitResult:
    """Parse JUnit XML (a <testsuites> or a single <testsuite>). Raises ValueError
    when it is not JUnit XML."""
    try:
        top = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not JUnit XML: {exc}") from None
    if top.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"not JUnit XML: root element <{top.tag}>")
    out = JUnitResult()
    suites = [top] if top.tag == "testsuite" else list(top.iter("testsuite"))
    for suite in suites:
        try:
            out.duration_s += float(suite.get("time") or 0.0)
        except ValueError:
            pass
        for case in suite.findall("testcase"):
            tid = node_id(case.get("classname", ""), case.get("name", ""), case.get("file"), root)
            kinds = {child.tag for child in case}
            if "failure" in kinds:
                bucket = out.failed
            elif "error" in kinds:
                bucket = out.errored
            elif "skipped" in kinds:
                bucket = out.skipped
            else:
                bucket = out.passed
            if tid not in bucket:
                bucket.append(tid)
    # A test with a failure and a teardown error counts once, as failed.
    out.errored = [t for t in out.errored if t not in out.failed]
    out.passed = [t for t in out.passed if t not in out.failed and t not in out.errored]
    return out


def wrap_command(command: str, rerun: list[str] | None = None) -> list[str]:
    """argv for the sandbox: `sh -c command`, for pytest with JUnit output in the
    workspace; `rerun` adds `--lf` and the given test ids (run the failures again)."""
    if not is_pytest(command):
        return ["sh", "-c", command]
    extra = f"--junitxml=$PWD/{JUNIT_NAME} -o junit_family=xunit1"
    if rerun:
        extra += " --lf " + " ".join(shlex.quote(t) for t in rerun)
    script = (f'PYTEST_ADDOPTS="${{PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }}{_dq(extra)}"; '
              'export PYTEST_ADDOPTS; eval "$1"')
    return ["sh", "-c", script, "harness-gate", command]


def _dq(text: str) -> str:
    """Escape for the inside of a double-quoted shell string, keeping $PWD live."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")


def build_report(command: str, result: SandboxResult, workspace: Path, commit: str | None) -> TestReport:
    """The TestReport of one run: from the JUnit file when the command wrote one,
    else from the exit code (one failed "test" named by the command)."""
    junit_path = workspace / JUNIT_NAME
    common = dict(commit=commit, command=command, exit_code=result.exit_code, timed_out=result.timed_out,
                  duration_s=round(result.duration_s, 3), output_tail=result.output_tail[-2000:])
    reason = result.reason or (f"exit code {result.exit_code}" if result.exit_code else None)
    if is_pytest(command) and junit_path.is_file():
        try:
            j = parse_junit(junit_path.read_bytes(), root=workspace)
        except ValueError as exc:
            reason = f"{reason or 'ok'}; unreadable JUnit file: {exc}"
        else:
            return TestReport(source="junit", passed=len(j.passed), failed=len(j.failed),
                              errored=len(j.errored), skipped=len(j.skipped), failing=j.failing,
                              reason=reason, **common)
    ok = result.exit_code == 0
    return TestReport(source="exit_code", passed=int(ok), failed=int(not ok),
                      failing=[] if ok else [command], reason=reason, **common)


def flaky_after_rerun(first: TestReport, again: TestReport) -> list[str]:
    """Tests that failed in `first` and passed when run once more."""
    if not first.failing:
        return []
    if again.ok:
        return list(first.failing)
    if first.source != "junit" or again.source != "junit" or again.exit_code not in (0, 1):
        return []
    still = set(again.failing)
    candidates = [t for t in first.failing if t not in still]
    # Only when they ran again: a test the rerun did not collect proves nothing.
    return candidates if again.passed >= len(candidates) else []


def passes(report: TestReport, flaky: set[str] | frozenset[str] = frozenset()) -> bool:
    """Green, or red only by tests already known to be flaky."""
    if report.ok:
        return True
    return (bool(flaky) and report.exit_code == 1 and bool(report.failing)
            and set(report.failing) <= set(flaky))
