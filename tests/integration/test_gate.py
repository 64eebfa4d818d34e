"""`harness gate`: real repositories, real folds, real test commands in a sandbox
(`local` here; the sandbox is a parameter so the docker backend runs the same tests).
Test runs are counted from the GateReport, never timed."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitutil import commit_edits, git, make_repo, snapshot, write_plan
from sandboxutil import require_docker
from harness.cli import views as render
from harness.gate.culprits import find_culprits
from harness.cli import main
from harness.errors import UsageError
from harness.fates import branch_fates
from harness.gate.gate import GATE_NOTE_MARK, gate_run
from harness.integrate.integrator import integrate_run, integration_ref
from harness.run.lifecycle import run_plan
from harness.records import AgentResult, RunRecord, TaskStatus, utcnow
from harness.config import ResolvedPlan, RunConfig
from harness.repo.run import Run, save_plan
from harness.repo.store import RunStore
from harness.repo.workspace import Workspace, branch_ref

SANDBOXES = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=SANDBOXES)
def sandbox(request) -> str:
    """The gate's sandbox backend; every gate test runs on each."""
    if request.param == "docker":
        require_docker()
    return request.param


# --- a tiny target: mods/*.py each carry a COST; the invariant is a total budget ---

BUDGET = '''import importlib, pkgutil
import mods

def total():
    return sum(importlib.import_module(f"mods.{m.name}").COST for m in pkgutil.iter_modules(mods.__path__))

def broken():
    return [m.name for m in pkgutil.iter_modules(mods.__path__)
            if getattr(importlib.import_module(f"mods.{m.name}"), "BROKEN", False)]
'''
CHECK = '''import sys
from budget import broken, total
sys.exit(1 if broken() or total() > 1000 else 0)
'''
TEST_BUDGET = '''from budget import broken, total

def test_total_within_budget():
    assert total() <= 10

def test_nothing_broken():
    assert broken() == []
'''
BASE_FILES = {"README.md": "target\n", "budget.py": BUDGET, "check.py": CHECK, "mods/__init__.py": "",
              "tests/test_budget.py": TEST_BUDGET}


def integrated_run(repo: Path, run_id: str, branches: dict[str, dict[str, str]],
                   test_cmd: str | None = None) -> RunRecord:
    """A finished run whose branches (committed directly, in this order) are integrated."""
    ws = Workspace(repo)
    base = git(repo, "rev-parse", "HEAD")
    t0 = utcnow()
    tasks = {}
    for i, (tid, edits) in enumerate(branches.items()):
        head = commit_edits(repo, base, edits, 1_700_000_000 + i)
        ws.set_ref(branch_ref(run_id, tid), head)
        tasks[tid] = AgentResult(task_id=tid, status=TaskStatus.succeeded, head_commit=head,
                                 base_commit=base, branch=f"harness/{run_id}/{tid}",
                                 started_at=t0, ended_at=t0 + timedelta(seconds=i + 1))
    plan = {"run": {"sandbox": {"type": "local"}, "test_cmd": test_cmd, "timeout_s": 120}}
    record = RunRecord(run_id=run_id, repo=str(ws.common), base_ref="main", base_commit=base,
                       sandbox="local", max_parallel=1, status="finished", tasks=tasks,
                       task_order=list(branches), plan=plan)
    RunStore(ws, run_id).create(record)
    integrate_run(Run.open(repo, run_id), order="plan")
    return Run.open(repo, run_id).record


def mod(name: str, cost: int = 0, broken: bool = False) -> dict[str, str]:
    return {f"mods/{name}.py": f"COST = {cost}\n" + ("BROKEN = True\n" if broken else "")}


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "target", BASE_FILES)


# --- the pure search -----------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(16, 1), (16, 2), (16, 3), (8, 2), (8, 4), (5, 5)])
def test_bisection_finds_every_culprit_within_its_bound(n, k):
    """Over every placement: at most K*ceil(log2 N) bisect runs (so with the red
    gate run, K*ceil(log2 N) + 1 to find them all), and K rebuilt heads gated again,
    the last green (or a bisect run of that same prefix, when the culprit was last).
    The base is run only inside that budget, when culprits are first in line twice."""
    seq = [f"t{i:02d}" for i in range(n)]
    worst_find = 0
    for bad in itertools.combinations(seq, k):
        out = find_culprits(seq, lambda s, _kind, bad=set(bad): not (set(s) & bad))
        assert sorted(c.task for c in out.culprits) == sorted(bad)
        assert out.green and out.kept == tuple(t for t in seq if t not in bad)
        assert out.count("base") <= 1 and out.count("rebuilt") <= k
        assert (out.kept, True) in [(tasks, ok) for tasks, _, ok in out.calls]  # kept was tested
        worst_find = max(worst_find, 1 + out.count("bisect", "base"))
    assert worst_find <= k * math.ceil(math.log2(n)) + 1


def test_bisection_blames_the_later_of_a_clashing_pair_and_a_red_base_blames_nobody():
    seq = ["a", "b", "c", "d", "e"]
    out = find_culprits(seq, lambda s, _kind: not {"b", "d"} <= set(s))
    assert [c.task for c in out.culprits] == ["d"]
    assert out.culprits[0].before == ("a", "b", "c") and out.kept == ("a", "b", "c", "e")
    for n in (1, 2, 5, 16):
        red = find_culprits([f"t{i}" for i in range(n)], lambda s, _kind: False)
        assert red.base_red and not red.culprits and not red.green
        assert red.calls[-1] == ((), "base", False)
        # the first search blames the first branch; its rebuilt head is red, so the
        # next search counts the base among its candidates: no more runs than the first
        assert red.tests <= 2 * math.ceil(math.log2(n)) + 1


# --- the gate on real repositories ---------------------------------------------------


def test_clashing_pair_later_one_rejected_other_lands(tmp_path, sandbox):
    """A real run (agents in the local sandbox) and a real `python3 -m pytest`: two
    branches pass alone and fail together; the later one is the culprit."""
    repo = make_repo(tmp_path / "target", BASE_FILES)
    git(repo, "branch", "landing")
    src = tmp_path / "src"
    branches = {"a": mod("a", 6), "b": mod("b", 6), "c": mod("c", 1)}
    for tid, files in branches.items():
        for path, text in files.items():
            (src / tid / path).parent.mkdir(parents=True, exist_ok=True)
            (src / tid / path).write_text(text)
    body = ('[run]\nid = "r1"\nsandbox = "local"\nmax_parallel = 1\n'
            'test_cmd = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider tests"\n')
    for tid in branches:
        body += f'\n[[task]]\nid = "{tid}"\ncommand = {json.dumps(f"cp -R {src / tid}/. .")}\n'
    run_plan(write_plan(tmp_path / "plan.toml", body), repo)
    integrate_run(Run.open(repo, "r1"), order="plan")
    before = snapshot(repo)
    lines: list[str] = []

    report = gate_run(Run.open(repo, "r1"), land="landing", sandbox=sandbox, progress=lines.append)

    assert report.status == "green" and report.culprits == ["b"]
    assert report.culprit_tests["b"] == ["tests/test_budget.py::test_total_within_budget"]
    # gate (red), [a] green, [a, b] red, [a, c] green (the rebuilt head), [b] alone green
    assert [r.purpose for r in report.runs] == ["gate", "bisect", "bisect", "rebuilt", "alone"]
    assert report.runs[0].tests.source == "junit" and report.runs[0].tests.passed == 1
    run = Run.open(repo, "r1")
    ws, record = run.ws, run.record
    tested = report.tested_commit
    assert git(repo, "rev-parse", "refs/heads/landing") == tested == report.runs[3].commit
    assert ws.ref_target(integration_ref("r1")) == tested == record.merge.head
    assert git(repo, "ls-tree", "-r", "--name-only", tested).split() == sorted(
        [*BASE_FILES, "mods/a.py", "mods/c.py"])
    assert {s.task_id: s.outcome for s in record.merge.steps} == {
        "a": "folded", "b": "rejected_by_gate", "c": "folded"}
    assert all(r.status == TaskStatus.succeeded for r in record.tasks.values())  # how the agents ended
    fates = branch_fates(record.model_dump(mode="json"))
    assert fates["b"]["fate"] == "rejected_by_gate" and "test_total_within_budget" in fates["b"]["detail"]
    assert fates["a"]["fate"] == fates["c"]["fate"] == "landed"
    [conflict] = [c for c in record.conflicts if c.conflict_class == "semantic"]
    assert conflict.task_id == "b" and conflict.other_tasks == ["a"]
    assert conflict.failing_tests == ["tests/test_budget.py::test_total_within_budget"]
    assert record.gate == report
    note = ws.read_note(tested)
    assert GATE_NOTE_MARK in note and "harness integrate r1" in note and "green" in note
    # nothing of the user's moved but the land ref; no worktree and no JUnit file left
    after = snapshot(repo)
    assert [r for r in after["refs"] if "landing" not in r] == [r for r in before["refs"] if "landing" not in r]
    assert {k: v for k, v in after.items() if k != "refs"} == {k: v for k, v in before.items() if k != "refs"}
    assert not list((ws.root / "worktrees" / "r1").glob("gate-*"))
    assert ".harness-junit.xml" not in git(repo, "ls-tree", "-r", "--name-only", tested)
    assert any("bisecting" in line for line in lines)


def test_two_culprits_among_sixteen_in_logarithmic_runs(target, sandbox):
    """K = 2 among N = 16, one of them first in line: found in the red gate run and
    at most K*ceil(log2 N) bisect runs; the integration rebuilt without the first is
    gated again (red), then without both (green), and that head is the tested one."""
    n, k = 16, 2
    names = [f"m{i:02d}" for i in range(1, n + 1)]
    bad = {"m01", "m12"}
    integrated_run(target, "r16", {t: mod(t, 1, broken=t in bad) for t in names})

    report = gate_run(Run.open(target, "r16"), test_cmd="python3 check.py", sandbox=sandbox, check_alone=False)

    assert report.status == "green" and report.culprits == ["m01", "m12"]
    assert report.culprit_tests == {"m01": ["python3 check.py"], "m12": ["python3 check.py"]}
    purposes = [r.purpose for r in report.runs]
    find = purposes.count("gate") + purposes.count("bisect") + purposes.count("base")
    assert purposes[0] == "gate" and "base" not in purposes
    assert find <= k * math.ceil(math.log2(n)) + 1, purposes
    assert [r.tests.ok for r in report.runs if r.purpose == "rebuilt"] == [False, True], purposes
    assert report.test_runs == find + k < n
    assert report.runs[-1].tasks == [t for t in names if t not in bad]
    assert report.runs[-1].commit == report.tested_commit and report.runs[-1].tests.ok
    assert "search   " + str(report.runs_for("bisect")) + " bisect run(s) for 2 culprit(s) among 16" \
        in render.gate_report(report)


def test_green_gate_lands_exactly_the_tested_commit_and_prints_json(target, sandbox):
    record = integrated_run(target, "rg", {"a": mod("a", 1), "b": mod("b", 2)}, test_cmd="python3 check.py")
    git(target, "branch", "landing")

    res = CliRunner().invoke(main, ["gate", "rg", "--repo", str(target), "--land", "landing",
                                    "--sandbox", sandbox, "--json"])

    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["status"] == "green" and report["tested_commit"] == record.merge.head
    assert report["landed_ref"] == "refs/heads/landing" and len(report["runs"]) == 1
    assert git(target, "rev-parse", "landing") == record.merge.head
    assert git(target, "rev-parse", "main") == record.base_commit  # only the named ref moved


def test_land_refused_when_the_ref_moved_during_the_gate(target):
    """Local sandbox only: the test command itself moves the host's ref mid-gate."""
    record = integrated_run(target, "rm", {"a": mod("a", 1)})
    git(target, "branch", "landing")
    elsewhere = commit_edits(target, record.base_commit, {"other.txt": "x\n"}, 1_700_000_100)
    cmd = f"git -C {target} update-ref refs/heads/landing {elsewhere} && python3 check.py"

    res = CliRunner().invoke(main, ["gate", "rm", "--repo", str(target), "--land", "landing",
                                    "--test-cmd", cmd, "--sandbox", "local"])

    assert res.exit_code == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("harness: refusing to land refs/heads/landing: it moved since the gate started")
    assert git(target, "rev-parse", "landing") == elsewhere  # left as the other writer set it
    gate = Run.open(target, "rm").record.gate
    assert gate.status == "green" and gate.landed_ref is None and "moved" in gate.land_error


def test_flaky_test_reported_under_rerun_failed(target, tmp_path, sandbox):
    # Outside the worktree in tmp; a container sees only its worktree, which the
    # rerun shares with the first run, so there the marker lives in the worktree.
    marker = tmp_path / "flaky-marker" if sandbox == "local" else ".flaky-marker"
    flaky = (f"import os\n\ndef test_sometimes():\n    if not os.path.exists({str(marker)!r}):\n"
             f"        open({str(marker)!r}, 'w').close()\n        assert False, 'first time'\n")
    integrated_run(target, "rf", {"a": mod("a", 1), "b": {"tests/test_flaky.py": flaky}})

    report = gate_run(Run.open(target, "rf"), test_cmd="PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q tests",
                      rerun_failed=True,
                      sandbox=sandbox)

    assert report.status == "green" and not report.culprits
    assert report.flaky == ["tests/test_flaky.py::test_sometimes"]
    assert [r.purpose for r in report.runs] == ["gate", "rerun"]
    assert report.runs[0].tests.failing == ["tests/test_flaky.py::test_sometimes"]
    assert report.runs[1].tests.ok and report.runs[1].tests.passed == 1  # only the failure ran again


def test_red_base_is_red_with_nobody_blamed(target, sandbox):
    integrated_run(target, "rb", {"a": mod("a", 1), "b": mod("b", 1)})

    res = CliRunner().invoke(main, ["gate", "rb", "--repo", str(target), "--test-cmd", "false",
                                    "--sandbox", sandbox])

    assert res.exit_code == 1
    gate = Run.open(target, "rb").record.gate
    assert gate.status == "red" and gate.culprits == [] and "base" in gate.reason
    assert not gate.rebuilt and gate.tested_commit is None


def test_every_branch_rejected_is_red(target, sandbox):
    integrated_run(target, "rx", {"a": mod("a", 1, broken=True), "b": mod("b", 1, broken=True)})
    report = gate_run(Run.open(target, "rx"), test_cmd="python3 check.py", sandbox=sandbox)
    assert report.status == "red" and report.culprits == ["a", "b"] and report.tested_commit is None
    record = Run.open(target, "rx").record
    assert record.merge.head == record.base_commit
    assert {f["fate"] for f in branch_fates(record.model_dump(mode="json")).values()} == {"rejected_by_gate"}
    assert not [c for c in record.conflicts if c.conflict_class == "semantic"]  # broken alone


def test_the_gate_takes_the_run_settings_from_the_plan_the_run_started_with(target):
    """The typed plan saved when the run started wins over the raw plan in its record,
    which is only read for runs older than it."""
    integrated_run(target, "tp", {"a": mod("a", 1)})  # no test_cmd in its raw plan
    run = Run.open(target, "tp")
    save_plan(run.store, ResolvedPlan(path=None, run=RunConfig.model_validate(
        {"sandbox": {"type": "local"}, "test_cmd": "python3 check.py", "timeout_s": 120})))
    report = gate_run(Run.open(target, "tp"))
    assert report.test_cmd == "python3 check.py" and report.status == "green"


def test_bad_input_exits_2_before_any_test_runs(target, tmp_path):
    ws = Workspace(target)
    fake = RunRecord(run_id="ni", repo=str(ws.common), base_ref="main",
                     base_commit=git(target, "rev-parse", "HEAD"), sandbox="local", max_parallel=1)
    RunStore(ws, "ni").create(fake)
    integrated_run(target, "ok", {"a": mod("a", 1)}, test_cmd="python3 check.py")
    runner = CliRunner()
    cases = {
        ("gate", "ni"): "was not integrated",
        ("gate", "nope"): "unknown run",
        ("gate", "ok", "--land", "no-such-branch"): "no such ref",
        ("gate", "ok", "--land", "HEAD"): "name the branch",
    }
    for args, words in cases.items():
        res = runner.invoke(main, [*args, "--repo", str(target)])
        assert res.exit_code == 2, (args, res.output)
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
    integrated_run(target, "nc", {"b": mod("b", 1)})  # no test_cmd in its plan
    res = runner.invoke(main, ["gate", "nc", "--repo", str(target)])
    assert res.exit_code == 2 and "no test command" in res.stderr
    assert not (ws.root / "runs" / "ok" / "gate").exists()  # nothing ran
    with pytest.raises(UsageError):
        gate_run(Run.open(target, "ok"), land="refs/heads/nope")


# --- landing on a checked-out branch -------------------------------------------------


def _refused_land(target: Path, run_id: str, args: list[str], marker: Path) -> str:
    """Runs the gate CLI expecting the land to be refused before any test; returns the line."""
    before = snapshot(target)
    res = CliRunner().invoke(main, ["gate", run_id, "--repo", str(target), "--sandbox", "local",
                                    "--test-cmd", f"touch {marker} && python3 check.py", *args])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)  # no traceback
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("harness: ") and "Traceback" not in res.output
    assert not marker.exists()  # refused before any test ran
    assert snapshot(target) == before
    run = Run.open(target, run_id)
    ws, record = run.ws, run.record
    assert record.gate is None and not (ws.root / "runs" / run_id / "gate").exists()
    assert not any(e["kind"] == "gate_started" for e in RunStore(ws, run_id).events())
    return line


def test_land_refused_on_the_branch_checked_out_in_the_main_worktree(target, tmp_path):
    record = integrated_run(target, "co", {"a": mod("a", 1)})
    assert git(target, "symbolic-ref", "HEAD") == "refs/heads/main"
    for name in ("main", "refs/heads/main"):
        line = _refused_land(target, "co", ["--land", name], tmp_path / "ran")
        assert f"--land {name}: refs/heads/main is checked out in {target.resolve()}" in line
        assert "--force-land" in line
    assert git(target, "rev-parse", "main") == record.base_commit
    with pytest.raises(UsageError, match="checked out"):
        gate_run(Run.open(target, "co"), test_cmd="python3 check.py", land="main")


def test_land_refused_on_a_branch_checked_out_in_a_linked_worktree(target, tmp_path):
    record = integrated_run(target, "lw", {"a": mod("a", 1)})
    linked = tmp_path / "linked"
    git(target, "worktree", "add", "-q", "-b", "landing", str(linked))
    line = _refused_land(target, "lw", ["--land", "landing"], tmp_path / "ran")
    assert f"refs/heads/landing is checked out in {linked.resolve()}" in line
    assert git(target, "rev-parse", "landing") == record.base_commit
    # once that worktree moves off the branch, the same land goes through
    git(linked, "switch", "-q", "--detach")
    res = CliRunner().invoke(main, ["gate", "lw", "--repo", str(target), "--land", "landing",
                                    "--test-cmd", "python3 check.py", "--sandbox", "local"])
    assert res.exit_code == 0, res.output
    assert git(target, "rev-parse", "landing") == record.merge.head


def test_force_land_lands_on_the_checked_out_branch(target, tmp_path):
    record = integrated_run(target, "fl", {"a": mod("a", 1)}, test_cmd="python3 check.py")
    before = snapshot(target)
    runner = CliRunner()
    res = runner.invoke(main, ["gate", "fl", "--repo", str(target), "--force-land", "--sandbox", "local"])
    assert res.exit_code == 2 and res.stderr.strip() == "harness: --force-land needs --land REF"

    res = runner.invoke(main, ["gate", "fl", "--repo", str(target), "--land", "main", "--force-land",
                               "--sandbox", "local"])

    assert res.exit_code == 0, res.output
    assert git(target, "rev-parse", "main") == record.merge.head
    assert Run.open(target, "fl").record.gate.landed_ref == "refs/heads/main"
    # only the ref moved: HEAD still names main, the index and the files are the user's
    after = snapshot(target)
    assert {k: v for k, v in after.items() if k not in ("refs", "head_commit", "status")} == \
        {k: v for k, v in before.items() if k not in ("refs", "head_commit", "status")}
    assert "mods/a.py" in git(target, "status", "--porcelain")  # the reverted look --land refuses
