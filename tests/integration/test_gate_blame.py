"""Blame for semantic conflicts: the partner search names the smallest set of
earlier branches a culprit fails with; blame follows the plan order, whatever the
agents' finish order; the gate's test runs have their own time limit. Real
repositories and real folds, the local sandbox; test runs are counted from the
GateReport, never timed."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitutil import commit_edits, git, make_repo, write_plan
from harness.cli import main
from harness.cli import views as render
from harness.fates import branch_fates
from harness.gate.culprits import find_culprits, find_partners
from harness.gate.gate import GATE_NOTE_MARK, gate_run
from harness.integrate.integrator import integrate_run
from harness.records import AgentResult, ConflictRecord, GateReport, RunRecord, TaskStatus, TestReport, utcnow
from harness.repo.run import Run
from harness.repo.store import RunStore
from harness.repo.workspace import Workspace, branch_ref


# --- the pure search -----------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (9, 1), (16, 1), (9, 2), (8, 3)])
def test_partner_search_names_exactly_the_clashing_set_within_its_bound(n, k):
    """Over every placement of K partners among N earlier branches: the set named is
    the one the culprit fails with, in sequence order, after one alone run and at
    most K*(ceil(log2 N) + 1) partner runs; a pair costs at most ceil(log2 N) + 1."""
    before = [f"t{i:02d}" for i in range(n)]
    for partners in itertools.combinations(before, k):
        need = {*partners, "c"}
        out = find_partners(before, "c", lambda s, _kind, need=need: not need <= set(s))
        assert out.semantic and out.partners == partners
        assert out.calls[0] == (("c",), "alone", True)
        assert all(s[-1] == "c" for s, _, _ in out.calls)  # every probe ends with the culprit
        assert out.search_runs == len(out.calls) - 1 <= k * (math.ceil(math.log2(n)) + 1)
    if n == 1:  # the one earlier branch must be the partner: nothing to search
        assert out.search_runs == 0


def test_partner_search_stops_when_the_culprit_fails_alone():
    out = find_partners(["a", "b"], "c", lambda s, _kind: "c" not in s)
    assert not out.alone_passes and not out.semantic and out.partners == ()
    assert out.calls == [(("c",), "alone", False)]


def test_culprit_then_partners_blame_the_later_of_the_pair_and_name_the_earlier():
    seq = ["a", "b", "c", "d", "e", "f"]
    clash = lambda s, _kind: not {"b", "e"} <= set(s)  # noqa: E731
    bis = find_culprits(seq, clash)
    [culprit] = bis.culprits
    assert culprit.task == "e" and culprit.before == ("a", "b", "c", "d")
    found = find_partners(culprit.before, culprit.task, clash)
    assert found.partners == ("b",)
    # reversed sequence: the later in that order is blamed, so the order decides
    assert [c.task for c in find_culprits(seq[::-1], clash).culprits] == ["b"]


# --- a tiny target: mods/*.py each carry a COST; the tests fail over a budget of 10 ---

BASE_FILES = {"README.md": "target\n", "mods/__init__.py": ""}
TEST_CMD = "awk '/^COST/ { s += $3 } END { exit s > 10 }' mods/*.py"
"""The tests: the COSTs add up to at most 10 (awk, not python, so a run costs little)."""


def mod(name: str, cost: int) -> dict[str, str]:
    return {f"mods/{name}.py": f"COST = {cost}\n"}


def finished_run(repo: Path, run_id: str, plan: dict[str, dict[str, str]], finish: list[str],
                 depends: dict[str, str] | None = None) -> RunRecord:
    """A finished run whose tasks are `plan` (in plan order) and finished in the
    order `finish`; integrated in finish order, as `harness integrate` does by default.
    A task in `depends` starts from the head of the task it names (listed before it
    in `finish`), as a dependent task does."""
    ws = Workspace(repo)
    base = git(repo, "rev-parse", "HEAD")
    depends = depends or {}
    t0 = utcnow()
    tasks = {}
    heads: dict[str, str] = {}
    for i, tid in enumerate(sorted(plan, key=finish.index)):
        heads[tid] = commit_edits(repo, heads[depends[tid]] if tid in depends else base, plan[tid], 1_700_000_000 + i)
    for tid in plan:
        head = heads[tid]
        ws.set_ref(branch_ref(run_id, tid), head)
        tasks[tid] = AgentResult(task_id=tid, status=TaskStatus.succeeded, head_commit=head, base_commit=base,
                                 branch=f"harness/{run_id}/{tid}", started_at=t0,
                                 ended_at=t0 + timedelta(seconds=finish.index(tid) + 1))
    raw = {"run": {"sandbox": {"type": "local"}, "test_cmd": TEST_CMD, "timeout_s": 120},
           "task": [{"id": t, "depends_on": [depends[t]] if t in depends else []} for t in plan]}
    record = RunRecord(run_id=run_id, repo=str(ws.common), base_ref="main", base_commit=base, sandbox="local",
                       max_parallel=1, status="finished", tasks=tasks, task_order=list(plan), plan=raw)
    RunStore(ws, run_id).create(record)
    integrate_run(Run.open(repo, run_id))
    return Run.open(repo, run_id).record


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "target", BASE_FILES)


# --- the gate on real repositories ---------------------------------------------------


# b and e clash (6 + 6 over the budget of 10); every other pair fits
PAIR_PLAN = {"a": mod("a", 1), "b": mod("b", 6), "c": mod("c", 1), "d": mod("d", 0), "e": mod("e", 6),
             "f": mod("f", 1)}
FINISH_ORDERS = [list("abcdef"), list("fedcba"), list("ebfadc"), list("cadebf"), list("ecbfad")]


@pytest.mark.parametrize("finish", FINISH_ORDERS, ids="".join)
def test_semantic_pair_is_named_with_the_same_blame_whatever_the_finish_order(target, finish):
    """One plan, its agents finished in five orders (e before b in four): the
    integration folds them in that order, but the gate blames in plan order, so
    every time e (the later of the pair in the plan) is rejected, b is named as its
    partner, and b's work lands."""
    record = finished_run(target, "p", PAIR_PLAN, finish)
    assert [s.task_id for s in record.merge.steps] == finish  # folded as they finished

    report = gate_run(Run.open(target, "p"), sandbox="local")

    assert report.status == "green" and report.culprits == ["e"], report.reason
    assert report.partners == {"e": ["b"]} and report.order == "plan"
    assert all(r.tasks[-1] == "e" for r in report.runs if r.purpose in ("alone", "partners"))
    record = Run.open(target, "p").record
    [conflict] = [c for c in record.conflicts if c.conflict_class == "semantic"]
    assert conflict.task_id == "e" and conflict.partners == ["b"]
    assert conflict.other_tasks == ["a", "b", "c", "d"]  # what was folded before it, in plan order
    assert conflict.partner_runs == report.runs_for("partners") <= math.ceil(math.log2(4)) + 1
    assert record.tasks["e"].status == TaskStatus.succeeded  # the agent's own status stays
    assert branch_fates(record.model_dump(mode="json"))["e"] == {
        "fate": "rejected_by_gate", "detail": f"failing {TEST_CMD} (with b)"}
    assert record.tasks["b"].status == TaskStatus.succeeded
    # the rebuilt integration is the tested commit, folded in plan order without e
    assert record.merge.head == report.tested_commit
    assert record.merge.order == ("finish" if finish == list(PAIR_PLAN) else "plan")
    assert [s.task_id for s in record.merge.steps] == list("abcdef")
    assert record.merge.folded == ["a", "b", "c", "d", "f"]
    files = git(target, "ls-tree", "-r", "--name-only", report.tested_commit).split()
    assert "mods/b.py" in files and "mods/e.py" not in files
    gate_note = Run.open(target, "p").ws.read_note(report.tested_commit).split(GATE_NOTE_MARK)[1]
    summary, data = gate_note.split("\n\n", 1)
    assert "culprits e (e fails with b)" in summary and json.loads(data)["partners"] == {"e": ["b"]}


def test_an_order_given_to_integrate_is_kept_by_the_gate(target):
    """`integrate --order given` is a deliberate priority (the bench folds the
    fastest first), as stable as the plan's: the gate blames in that order."""
    finished_run(target, "go", PAIR_PLAN, list("abcdef"))
    integrate_run(Run.open(target, "go"), order="given", tasks=list("fedcba"))

    report = gate_run(Run.open(target, "go"), sandbox="local")

    assert report.order == "integration" and report.culprits == ["b"] and report.partners == {"b": ["e"]}
    merge = Run.open(target, "go").record.merge
    assert merge.order == "given" and merge.folded == list("fedca")


def test_gate_output_names_the_partner_and_the_extra_runs(target):
    finished_run(target, "out", PAIR_PLAN, list("fedcba"))

    res = CliRunner().invoke(main, ["gate", "out", "--repo", str(target), "--sandbox", "local"])

    assert res.exit_code == 0, res.output
    report = Run.open(target, "out").record.gate
    n = report.runs_for("partners")
    assert f"culprit  e: {TEST_CMD} (passes alone; fails with b)" in res.stdout
    assert f"blame    1 culprit(s) tested alone; {n} partner-search run(s) for 1 semantic conflict(s)" \
        in res.stdout
    assert "in plan order" in res.stdout
    assert f"  e: passes alone, fails with b (found in {n} extra test run(s))" in res.stdout
    assert "(the 4 branch(es) folded before it)" in res.stdout
    assert sum(1 for line in res.stdout.splitlines() if " partners " in line) == n  # the runs table
    # the run's view names the partner too, in the branch's fate
    shown = CliRunner().invoke(main, ["show", "out", "--repo", str(target)]).stdout
    [row] = [line for line in shown.splitlines() if line.startswith("e ")]
    assert f"rejected_by_gate  failing {TEST_CMD} (with b)" in row
    assert "  semantic conflict e with b: failing" in shown
    data = json.loads(CliRunner().invoke(main, ["gate", "out", "--repo", str(target), "--sandbox", "local",
                                                "--json"]).stdout)
    assert data["status"] == "green"  # gated again: the rebuilt integration, green at once


def test_three_way_conflict_names_both_partners(target):
    """a, c and e each cost 4: any two fit the budget, all three do not. The last of
    them in the plan is blamed and the other two are named, none of the others."""
    plan = {"a": mod("a", 4), "b": mod("b", 0), "c": mod("c", 4), "d": mod("d", 1), "e": mod("e", 4),
            "f": mod("f", 1)}
    finished_run(target, "tw", plan, list("edcbaf"))

    report = gate_run(Run.open(target, "tw"), sandbox="local")

    assert report.culprits == ["e"] and report.partners == {"e": ["a", "c"]}
    [conflict] = [c for c in Run.open(target, "tw").record.conflicts if c.conflict_class == "semantic"]
    assert conflict.partners == ["a", "c"] and conflict.partner_runs == report.runs_for("partners") >= 1
    probes = [r.tasks for r in report.runs if r.purpose == "partners"]
    assert probes[-1] == ["a", "c", "e"]  # the check that the two are enough
    assert "fails with a, c" in "\n".join(render.conflict_detail(conflict))


def test_plan_order_puts_a_task_after_the_task_it_depends_on(target):
    """x is listed first but depends on y (its branch holds y's work); y and z clash.
    Folded in bare plan order x would come first and bring y's work with it, so x
    would be named; the gate folds y before x and names y."""
    plan = {"x": mod("x", 1), "z": mod("z", 6), "y": mod("y", 6)}
    finished_run(target, "dp", plan, ["y", "z", "x"], depends={"x": "y"})

    report = gate_run(Run.open(target, "dp"), sandbox="local")

    assert report.order == "plan" and report.culprits == ["z"] and report.partners == {"z": ["y"]}
    assert report.status == "green" and [r.tasks for r in report.runs if r.purpose == "bisect"][0] == ["y"]
    assert Run.open(target, "dp").record.merge.folded == ["y", "x"]


def test_a_culprit_broken_alone_gets_no_partner_search(target):
    finished_run(target, "ba", {"a": mod("a", 1), "b": mod("b", 11), "c": mod("c", 1)}, list("cba"))
    report = gate_run(Run.open(target, "ba"), sandbox="local")
    assert report.culprits == ["b"] and report.partners == {}
    assert report.runs_for("alone") == 1 and report.runs_for("partners") == 0
    assert not [c for c in Run.open(target, "ba").record.conflicts if c.conflict_class == "semantic"]
    assert "blame    1 culprit(s) tested alone; 0 partner-search run(s)" in render.gate_report(report)


def test_records_written_before_the_partner_search_still_read():
    """The new fields are optional: a record without them reads with their defaults,
    and one with a key this harness does not know reads too (the versioning policy)."""
    old = {"schema_version": 1, "run_id": "r", "task_id": "e", "conflict_class": "semantic",
           "ours_commit": "a" * 40, "theirs_commit": "b" * 40, "other_tasks": ["a", "b"]}
    c = ConflictRecord.model_validate(old)
    assert c.partners == [] and c.partner_runs == 0 and c.other_tasks == ["a", "b"]
    assert "what was folded before it: a, b" in render.conflict_detail(c)[0]
    g = GateReport.model_validate({"run_id": "r", "status": "green", "test_cmd": "t", "from_later": 1})
    assert g.partners == {} and g.order is None and g.test_timeout_s is None
    assert "blame" not in render.gate_report(g)
    assert TestReport.model_validate({"exit_code": 0}).timed_out is False


# --- the gate's own time limit ---------------------------------------------------------


def test_test_runs_have_their_own_time_limit_not_the_agents(target, tmp_path):
    """A real run whose agents get one second, and a test suite that takes longer:
    the gate's runs are limited by [run] test_timeout_s (default 1800), so it is
    green; `gate --timeout` shorter than the suite makes every run time out, red."""
    body = ('[run]\nid = "to"\nsandbox = "local"\ntimeout_s = 1\n'
            f'test_cmd = "sleep 1.5 && {TEST_CMD}"\n'
            '[[task]]\nid = "a"\ncommand = "echo COST = 1 > mods/a.py"\n')
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(write_plan(tmp_path / "plan.toml", body)), "--repo", str(target)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(main, ["integrate", "to", "--repo", str(target)]).exit_code == 0

    res = runner.invoke(main, ["gate", "to", "--repo", str(target), "--json"])

    assert res.exit_code == 0, res.output
    green = json.loads(res.stdout)
    assert green["status"] == "green" and green["test_timeout_s"] == 1800
    assert [r["tests"]["timed_out"] for r in green["runs"]] == [False]

    res = runner.invoke(main, ["gate", "to", "--repo", str(target), "--timeout", "0.5"])

    assert res.exit_code == 1, res.output
    red = Run.open(target, "to").record.gate
    assert red.status == "red" and red.test_timeout_s == 0.5 and red.tested_commit is None
    assert red.runs and all(r.tests.timed_out and r.tests.reason == "timed out after 0.5s" for r in red.runs)
    assert "timed out after 0.5s (gate --timeout, [run] test_timeout_s)" in red.reason
    assert "[local sandbox, 0.5s a run]" in res.stdout and "FAIL (timed out after 0.5s)" in res.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e9"])
def test_a_bad_gate_timeout_is_one_line_and_exit_2(target, tmp_path, value):
    finished_run(target, "bt", {"a": mod("a", 1)}, ["a"])
    res = CliRunner().invoke(main, ["gate", "bt", "--repo", str(target), "--timeout", value])
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("harness: --timeout ") and "more than 0 and at most a week" in line
    assert Run.open(target, "bt").record.gate is None


@pytest.mark.parametrize("value", ["0", "-5", '"soon"', "nan", "1e9"])
def test_a_bad_plan_test_timeout_is_one_line_and_exit_2(target, tmp_path, value):
    body = (f'[run]\nsandbox = "local"\ntest_timeout_s = {value}\ntest_cmd = "{TEST_CMD}"\n'
            '[[task]]\nid = "a"\ncommand = "true"\n')
    res = CliRunner().invoke(main, ["run", str(write_plan(tmp_path / "plan.toml", body)), "--repo", str(target)])
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert "plan.toml: run.test_timeout_s:" in line
    assert not (Workspace(target).root / "runs").exists() or not list((Workspace(target).root / "runs").iterdir())
