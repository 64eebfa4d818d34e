"""`harness integrate`: in-memory folds of real branches in real repositories, some
made by real runs with the local sandbox, some committed directly."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner

from gitutil import git, make_repo, snapshot, write_plan
from harness.cli import main
from harness.integrate.integrator import fold, integrate_run, integration_ref
from harness.run.retry import ConflictRetry
from harness.run.lifecycle import run_plan
from harness.records import AgentResult, RunRecord, TaskSpec, TaskStatus, utcnow
from harness.repo.run import Run
from harness.repo.store import RunStore
from harness.repo.workspace import Workspace, branch_ref

TEN = "".join(f"line {i}\n" for i in range(1, 11))


# --- helpers -------------------------------------------------------------------------


def commit(repo_path: Path, base: str, edits: dict[str, bytes | str | None], msg: str = "agent",
           when: int = 1_700_000_000) -> str:
    """A commit on `base` with `edits` (None deletes), made without a worktree."""
    repo = pygit2.Repository(str(repo_path))
    parent = repo[base].peel(pygit2.Commit)
    index = pygit2.Index()
    index.read_tree(parent.tree)
    for path, data in edits.items():
        if data is None:
            index.remove(path)
        else:
            blob = repo.create_blob(data.encode() if isinstance(data, str) else data)
            index.add(pygit2.IndexEntry(path, blob, pygit2.enums.FileMode.BLOB))
    sig = pygit2.Signature("agent", "agent@example.com", when, 0)
    return str(repo.create_commit(None, sig, sig, msg, index.write_tree(repo), [parent.id]))


def fake_run(repo: Path, run_id: str, heads: dict[str, str], base: str | None = None) -> RunRecord:
    """A finished run whose tasks ended in `heads` order, with their branches set."""
    ws = Workspace(repo)
    base = base or git(repo, "rev-parse", "HEAD")
    t0 = utcnow()
    tasks = {}
    for i, (tid, head) in enumerate(heads.items()):
        ws.set_ref(branch_ref(run_id, tid), head)
        tasks[tid] = AgentResult(task_id=tid, status=TaskStatus.succeeded, head_commit=head,
                                 base_commit=base, branch=f"harness/{run_id}/{tid}",
                                 started_at=t0, ended_at=t0 + timedelta(seconds=i + 1))
    record = RunRecord(run_id=run_id, repo=str(ws.common), base_ref="main", base_commit=base,
                       sandbox="local", max_parallel=1, status="finished", tasks=tasks,
                       task_order=list(heads))
    RunStore(ws, run_id).create(record)
    return record


def tree_file(repo: Path, commit_id: str, path: str) -> str:
    return git(repo, "show", f"{commit_id}:{path}")


def plan_file(tmp_path: Path, run_id: str, tasks: dict[str, str], extra: str = "") -> Path:
    body = f'[run]\nsandbox = "local"\nid = "{run_id}"\nmax_parallel = 4\nbackoff_s = 0.01\n{extra}\n'
    for tid, command in tasks.items():
        body += f'\n[[task]]\nid = "{tid}"\ncommand = {json.dumps(command)}\n'
    return write_plan(tmp_path / f"{run_id}.toml", body)


def py(code: str) -> str:
    """A task command running a Python one-liner file (no shell quoting games)."""
    return f"python3 -c {json.dumps(code)}"


def set_line(path: str, n: int, text: str) -> str:
    return py(f"p='{path}'; L=open(p).read().splitlines(True); L[{n - 1}]='{text}\\n'; "
              f"open(p,'w').write(''.join(L))")


# --- real runs -----------------------------------------------------------------------


def test_disjoint_run_folds_cleanly_into_a_story(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN, "b.txt": TEN, "c.txt": TEN})
    plan = plan_file(tmp_path, "dj", {"ta": set_line("a.txt", 2, "A"), "tb": set_line("b.txt", 5, "B"),
                                      "tc": py("open('new.txt','w').write('C\\n')")})
    record = run_plan(plan, repo)
    assert record.ok
    before = snapshot(repo)
    lines: list[str] = []
    report = integrate_run(Run.open(repo, "dj"), progress=lines.append)
    assert before == snapshot(repo)
    assert report.status == "clean" and report.ref_moved
    assert sorted(report.folded) == ["ta", "tb", "tc"]
    assert len(lines) == 4 and "[3/3]" in lines[-1]
    head = git(repo, "rev-parse", "harness/dj/integration")
    assert head == report.head
    assert tree_file(repo, head, "a.txt").splitlines()[1] == "A"
    assert tree_file(repo, head, "b.txt").splitlines()[4] == "B"
    assert tree_file(repo, head, "new.txt") == "C"
    # the story: one merge commit per task, first parent the integration so far
    first_parents = git(repo, "rev-list", "--first-parent", f"{record.base_commit}..{head}").split()
    assert len(first_parents) == 3
    for step in report.steps:
        parents = git(repo, "rev-list", "--parents", "-n1", step.merge_commit).split()[1:]
        assert parents == [step.head_before, step.agent_head]
        msg = git(repo, "log", "-1", "--format=%B", step.merge_commit)
        assert f"Harness-Run: dj\nHarness-Task: {step.task_id}" in msg
    graph = git(repo, "log", "--graph", "--format=%s", "harness/dj/integration")
    assert graph.count("harness: fold") == 3 and "|\\" in graph
    # the note and the record
    note = git(repo, "notes", "--ref=refs/notes/harness", "show", head)
    assert note.startswith("harness integrate dj: clean")
    data = json.loads(note[note.index("{"):])
    assert [s["task"] for s in data["steps"]] == [s.task_id for s in report.steps]
    run = Run.open(repo, "dj")
    store, saved = run.store, run.record
    assert saved.merge == report and saved.conflicts == []
    kinds = [e["kind"] for e in store.events()]
    assert kinds[-1] == "integrate_finished" and "integrate_started" in kinds


def test_same_lines_give_one_content_conflict_and_the_second_is_skipped(tmp_path):
    repo = make_repo(tmp_path / "repo", {"f.txt": TEN, "g.txt": TEN})
    plan = plan_file(tmp_path, "same", {
        "first": set_line("f.txt", 3, "FIRST"),
        "second": py("p='f.txt'; L=open(p).read().splitlines(True); L[2]='SECOND\\n'; L[3]='SECOND2\\n';"
                     "open(p,'w').write(''.join(L)); open('g.txt','a').write('more\\n')"),
        "third": set_line("g.txt", 1, "THIRD"),
    })
    run_plan(plan, repo)
    before = snapshot(repo)
    report = integrate_run(Run.open(repo, "same"), order="plan")
    assert before == snapshot(repo)
    assert [(s.task_id, s.outcome) for s in report.steps] == [
        ("first", "folded"), ("second", "conflicted"), ("third", "folded")]
    assert report.status == "conflicted" and report.ref_moved
    [c] = report.unresolved
    first = report.steps[0]
    assert c.task_id == "second" and c.ours_commit == first.merge_commit
    assert c.theirs_commit == git(repo, "rev-parse", "harness/same/second")
    assert c.merge_base == git(repo, "rev-parse", "main")
    [p] = c.paths
    assert p.path == "f.txt" and p.kind == "content"
    assert [(r.start, r.count) for r in p.ours_ranges] == [(3, 1)]
    assert [(r.start, r.count) for r in p.theirs_ranges] == [(3, 2)]
    assert p.ours_text == "FIRST\n" and p.theirs_text == "SECOND\nSECOND2\n"
    assert p.base_text == "line 3\nline 4\n"
    assert p.ancestor_id and p.ours_id and p.theirs_id
    assert c.other_tasks == ["first"]
    head = git(repo, "rev-parse", "harness/same/integration")
    assert tree_file(repo, head, "f.txt").splitlines()[2] == "FIRST"
    assert tree_file(repo, head, "g.txt").splitlines()[0] == "THIRD"
    saved = Run.open(repo, "same").record
    assert saved.conflicts == [c]
    note = git(repo, "notes", "--ref=refs/notes/harness", "show", head)
    assert "conflict second: f.txt (content)" in note


AGENT = r'''
import json, os, pathlib
ctx = pathlib.Path(os.environ["HARNESS_DIR"]) / "context" / "conflict.json"
lines = open("f.txt").read().splitlines(True)
if ctx.exists():
    c = json.loads(ctx.read_text())
    spec = json.loads(pathlib.Path(os.environ["HARNESS_TASK_FILE"]).read_text())
    assert spec["conflict"]["task_id"] == "second"
    open("proof.txt", "w").write(c["paths"][0]["path"] + " " + c["paths"][0]["ours_text"])
    lines[3] = "SECOND moved below\n"   # redo the work around the other agent's line
else:
    lines[2] = "SECOND\n"
open("f.txt", "w").write("".join(lines))
'''


def test_retry_reruns_the_conflicting_task_on_the_integration_head(tmp_path):
    repo = make_repo(tmp_path / "repo", {"f.txt": TEN})
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    plan = plan_file(tmp_path, "rt", {"first": set_line("f.txt", 3, "FIRST"),
                                      "second": f"python3 {script}"})
    record = run_plan(plan, repo)
    old_second = record.tasks["second"].head_commit
    before = snapshot(repo)
    report = integrate_run(Run.open(repo, "rt"), order="plan", policy="retry", retry=ConflictRetry)
    assert before == snapshot(repo)
    assert [(s.task_id, s.outcome) for s in report.steps] == [
        ("first", "folded"), ("second", "retried"), ("second", "folded")]
    assert report.status == "clean" and report.unresolved == []
    retried, folded = report.steps[1:]
    assert retried.conflict is not None and retried.agent_head == old_second
    new_second = git(repo, "rev-parse", "harness/rt/second")
    assert folded.agent_head == new_second != old_second
    # the new attempt is based on the integration head it was handed
    first_merge = report.steps[0].merge_commit
    assert git(repo, "rev-parse", f"{new_second}^") == first_merge
    head = report.head
    assert tree_file(repo, head, "proof.txt") == "f.txt FIRST"
    assert tree_file(repo, head, "f.txt").splitlines()[2:4] == ["FIRST", "SECOND moved below"]
    saved = Run.open(repo, "rt").record
    second = saved.tasks["second"]
    assert [a.number for a in second.attempts] == [1, 2]
    assert second.head_commit == new_second and second.status == TaskStatus.succeeded
    assert second.attempts[1].base_commit == first_merge
    spec = TaskSpec.model_validate_json(
        (RunStore(Workspace(repo), "rt").attempt_dir("second", 2) / "harness" / "task.json").read_text())
    assert spec.conflict == retried.conflict
    assert git(repo, "rev-parse", "refs/harness/rt/second/2") == new_second


def test_retry_that_fails_leaves_the_branch_out(tmp_path):
    repo = make_repo(tmp_path / "repo", {"f.txt": TEN})
    plan = plan_file(tmp_path, "rf", {
        "first": set_line("f.txt", 3, "FIRST"),
        "second": "if [ -f \"$HARNESS_DIR/context/conflict.json\" ]; then exit 4; fi; "
                  + set_line("f.txt", 3, "SECOND")})
    run_plan(plan, repo)
    report = integrate_run(Run.open(repo, "rf"), order="plan", policy="retry", retry=ConflictRetry)
    assert [(s.task_id, s.outcome) for s in report.steps] == [
        ("first", "folded"), ("second", "retried"), ("second", "conflicted")]
    assert report.status == "conflicted" and len(report.unresolved) == 1
    second = Run.open(repo, "rf").record.tasks["second"]
    assert second.status == TaskStatus.conflicted and len(second.attempts) == 2


# --- conflict kinds ------------------------------------------------------------------


@pytest.fixture
def kinds_repo(tmp_path):
    return make_repo(tmp_path / "repo", {"a.txt": TEN, "keep.txt": TEN,
                                         "img.bin": "\0\1\2header\n" * 4})


KIND_CASES = {
    "add/add": ({"new.txt": "one\n"}, {"new.txt": "two\n"}, "new.txt", ""),
    "modify/delete": ({"a.txt": TEN.replace("line 5", "five")}, {"a.txt": None}, "a.txt", ""),
    "rename": ({"a.txt": None, "b.txt": TEN}, {"a.txt": None, "c.txt": TEN}, "a.txt", "rename/rename (1to2)"),
    "rename/delete": ({"a.txt": None, "b.txt": TEN}, {"a.txt": None}, "a.txt", "rename/delete"),
    "rename/modify": ({"a.txt": None, "b.txt": TEN.replace("line 2", "ours 2")},
                      {"a.txt": TEN.replace("line 2", "theirs 2")}, "a.txt", "rename/modify"),
    "binary": ({"img.bin": b"\0ours\n"}, {"img.bin": b"\0theirs\n"}, "img.bin", ""),
}


@pytest.mark.parametrize("case", list(KIND_CASES))
def test_each_conflict_kind_is_classified(kinds_repo, case):
    ours_edits, theirs_edits, path, detail = KIND_CASES[case]
    base = git(kinds_repo, "rev-parse", "HEAD")
    a, b = commit(kinds_repo, base, ours_edits), commit(kinds_repo, base, theirs_edits)
    result = fold(Workspace(kinds_repo), base, [("a", a), ("b", b)], run_id="k")
    assert [s.outcome for s in result.steps] == ["folded", "conflicted"]
    [c] = result.unresolved
    [p] = c.paths
    assert p.kind == case.split("/")[0] if case.startswith("rename") else p.kind == case
    assert p.path == path
    assert p.detail.startswith(detail)
    if case == "binary":
        assert p.ours_text == p.theirs_text == "" and p.ours_ranges == []
    if case == "rename":
        assert (p.ours_path, p.theirs_path, p.ancestor_path) == ("b.txt", "c.txt", "a.txt")
    if case == "rename/modify":
        assert p.ours_text == "ours 2\n" and p.theirs_text == "theirs 2\n"
        assert [(r.start, r.count) for r in p.ours_ranges] == [(2, 1)]
    if case == "modify/delete":
        assert p.ours_id and p.theirs_id is None and p.ancestor_id
        assert p.ours_text == "five\n"


def test_rename_that_does_not_clash_merges_cleanly(kinds_repo):
    base = git(kinds_repo, "rev-parse", "HEAD")
    a = commit(kinds_repo, base, {"a.txt": None, "moved.txt": TEN})
    b = commit(kinds_repo, base, {"a.txt": TEN.replace("line 9", "nine")})
    result = fold(Workspace(kinds_repo), base, [("a", a), ("b", b)], run_id="k")
    assert [s.outcome for s in result.steps] == ["folded", "folded"]
    assert tree_file(kinds_repo, result.head, "moved.txt").splitlines()[8] == "nine"


# --- determinism, purity, empties, order ---------------------------------------------


def test_same_inputs_give_same_trees_and_commits(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN, "b.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    t0 = int(git(repo, "log", "-1", "--format=%at", base)) + 100
    heads = [(f"t{i}", commit(repo, base, {f"f{i}.txt": f"{i}\n"}, when=t0 + i)) for i in range(5)]
    heads.append(("x", commit(repo, base, {"a.txt": TEN.replace("line 1\n", "X\n")})))
    before = snapshot(repo)
    r1 = fold(Workspace(repo), base, heads, run_id="d")
    r2 = fold(pygit2.Repository(str(repo)), base, heads, run_id="d")
    assert before == snapshot(repo)
    assert [s.tree for s in r1.steps] == [s.tree for s in r2.steps]
    assert r1.head == r2.head and r1.tree == r2.tree
    # committer time is the later author time of the parents, not the clock
    assert int(git(repo, "log", "-1", "--format=%ct", r1.head)) == t0 + 4
    # and through the command: re-integrating an unchanged run moves nothing
    fake_run(repo, "d", dict(heads))
    first = integrate_run(Run.open(repo, "d"))
    again = integrate_run(Run.open(repo, "d"))
    assert first.head == again.head == git(repo, "rev-parse", "harness/d/integration")


def test_pure_fold_moves_no_ref(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    heads = [("p", commit(repo, base, {"p.txt": "p\n"})), ("q", commit(repo, base, {"a.txt": "q\n"})),
             ("r", commit(repo, base, {"a.txt": "r\n"}))]
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    before = snapshot(repo)
    result = fold(Workspace(repo), base, heads, run_id="pure")
    assert [s.outcome for s in result.steps] == ["folded", "folded", "conflicted"]
    assert git(repo, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    assert before == snapshot(repo)
    assert git(repo, "cat-file", "-t", result.head) == "commit"


def test_empty_branch_is_an_empty_step(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    real = commit(repo, base, {"a.txt": "changed\n"})
    fake_run(repo, "e", {"noop": base, "real": real})
    report = integrate_run(Run.open(repo, "e"))
    assert [(s.task_id, s.outcome) for s in report.steps] == [("noop", "empty"), ("real", "folded")]
    assert report.status == "clean"


def test_finish_order_and_plan_order(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    heads = {t: commit(repo, base, {f"{t}.txt": t}) for t in ("x", "y", "z")}
    record = fake_run(repo, "o", heads)
    run = Run.open(repo, "o")
    store = run.store
    tasks = dict(record.tasks)
    tasks["x"] = tasks["x"].model_copy(update={"ended_at": tasks["z"].ended_at + timedelta(seconds=5)})
    store.update(record, tasks=tasks)
    assert [s.task_id for s in integrate_run(Run.open(repo, "o")).steps] == ["y", "z", "x"]
    assert [s.task_id for s in integrate_run(Run.open(repo, "o"), order="plan").steps] == ["x", "y", "z"]
    result = CliRunner().invoke(main, ["integrate", "o", "--repo", str(repo), "--order", "given",
                                       "--task", "z", "--task", "x", "--json"])
    assert result.exit_code == 0, result.output
    assert [s["task_id"] for s in json.loads(result.stdout)["steps"]] == ["z", "x"]
    result = CliRunner().invoke(main, ["integrate", "o", "--repo", str(repo), "--order", "given"])
    assert result.exit_code == 2 and "name the tasks to fold" in result.output


def test_fail_policy_stops_and_moves_no_ref(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    fake_run(repo, "f", {"one": commit(repo, base, {"a.txt": "1\n"}),
                         "two": commit(repo, base, {"a.txt": "2\n"}),
                         "three": commit(repo, base, {"c.txt": "3\n"})})
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    result = CliRunner().invoke(main, ["integrate", "f", "--repo", str(repo), "--on-conflict", "fail",
                                       "--order", "plan"])
    assert result.exit_code == 1, result.output
    assert "NOT moved" in result.output and "a.txt" in result.output
    assert git(repo, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    saved = Run.open(repo, "f").record
    assert saved.merge.status == "failed" and not saved.merge.ref_moved
    assert [s.outcome for s in saved.merge.steps] == ["folded", "conflicted", "skipped"]
    assert len(saved.conflicts) == 1


def test_cli_integrate_json_and_onto(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "later")
    later = git(repo, "rev-parse", "HEAD")
    fake_run(repo, "j", {"one": commit(repo, base, {"one.txt": "1\n"})}, base=base)
    result = CliRunner().invoke(main, ["integrate", "j", "--repo", str(repo), "--onto", "main", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["base_commit"] == later and data["onto"] == "main"
    assert git(repo, "rev-parse", "harness/j/integration^1") == later


# --- bad input -----------------------------------------------------------------------


def _bad(repo: Path, args: list[str], expect: str) -> None:
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    before = snapshot(repo)
    result = CliRunner().invoke(main, ["integrate", *args, "--repo", str(repo)])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
    assert git(repo, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    assert before == snapshot(repo)


def test_bad_inputs_exit_2_and_move_nothing(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    _bad(repo, ["nope"], "unknown run 'nope'")
    fake_run(repo, "r", {"one": commit(repo, base, {"one.txt": "1\n"}),
                         "two": commit(repo, base, {"two.txt": "2\n"})})
    _bad(repo, ["r", "--onto", "no-such-ref"], "unknown ref 'no-such-ref'")
    ws = Workspace(repo)
    ws.set_ref(branch_ref("r", "two"), commit(repo, base, {"two.txt": "rewritten\n"}))
    _bad(repo, ["r"], "harness/r/two moved since the run")
    ws.delete_ref(branch_ref("r", "two"))
    _bad(repo, ["r"], "harness/r/two was deleted since the run")
    assert ws.ref_target(integration_ref("r")) is None
    # a run where nothing succeeded
    fake_run(repo, "none", {})
    _bad(repo, ["none"], "no succeeded branches")


def test_fold_trees_equal_gits_own_merge_trees(tmp_path):
    """The fold writes only the changed trees; the result must be the tree git writes."""
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN, "d/x.txt": "x\n", "d/e/y.txt": "y\n",
                                         "gone/only.txt": "o\n", "swap": "file\n"})
    base = git(repo, "rev-parse", "HEAD")
    heads = [("add", commit(repo, base, {"new/deep/n.txt": "n\n", "d/e/z.txt": "z\n"})),
             ("delete", commit(repo, base, {"gone/only.txt": None, "d/x.txt": None})),
             ("to-dir", commit(repo, base, {"swap": None, "swap/inner.txt": "i\n"})),
             ("modify", commit(repo, base, {"a.txt": TEN.replace("line 7", "seven"), "d/e/y.txt": "Y\n"}))]
    result = fold(Workspace(repo), base, heads, run_id="t")
    assert [s.outcome for s in result.steps] == ["folded"] * 4
    g = pygit2.Repository(str(repo))
    for step in result.steps:
        expect = g.merge_commits(step.head_before, step.agent_head).write_tree(g)
        assert step.tree == str(expect)
    assert "gone" not in g[result.tree]
    assert git(repo, "show", f"{result.head}:swap/inner.txt") == "i"


def test_integrate_a_chosen_subset_of_tasks(tmp_path):
    repo = make_repo(tmp_path / "repo", {"a.txt": TEN})
    base = git(repo, "rev-parse", "HEAD")
    fake_run(repo, "sub", {t: commit(repo, base, {f"{t}.txt": t}) for t in ("x", "y", "z")})
    report = integrate_run(Run.open(repo, "sub"), tasks=["z", "x"], order="plan")
    assert [s.task_id for s in report.steps] == ["x", "z"]
    with pytest.raises(ValueError, match="no succeeded task 'w'"):
        integrate_run(Run.open(repo, "sub"), tasks=["w"])
