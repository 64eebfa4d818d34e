"""`harness conflicts`: the collision forecast, on real runs with a known overlap
pattern and on tasks still running (attempt refs, live worktrees)."""

from __future__ import annotations

import json
from pathlib import Path

import pygit2
from click.testing import CliRunner

from gitutil import git, make_repo, snapshot, write_plan
from harness.cli import main
from harness.integrate.forecast import forecast_run
from harness.repo.run import Run
from harness.run.lifecycle import run_plan
from harness.records import ConflictForecast, RunRecord
from harness.repo.store import RunStore
from harness.repo.workspace import Workspace, attempt_ref

TEN = "".join(f"line {i}\n" for i in range(1, 11))


def set_line(path: str, n: int, text: str) -> str:
    code = (f"p='{path}'; L=open(p).read().splitlines(True); L[{n - 1}]='{text}\\n'; "
            f"open(p,'w').write(''.join(L))")
    return f"python3 -c {json.dumps(code)}"


def six_task_run(tmp_path: Path) -> Path:
    """A/B change the same lines, C/D one file in distant regions, E/F other files."""
    repo = make_repo(tmp_path / "repo", {"shared.txt": TEN, "regions.txt": TEN, "e.txt": TEN})
    tasks = {"A": set_line("shared.txt", 4, "A"), "B": set_line("shared.txt", 4, "B"),
             "C": set_line("regions.txt", 1, "C"), "D": set_line("regions.txt", 9, "D"),
             "E": set_line("e.txt", 5, "E"), "F": "echo F > f.txt"}
    body = '[run]\nsandbox = "local"\nid = "six"\nmax_parallel = 6\n'
    for tid, cmd in tasks.items():
        body += f"\n[[task]]\nid = \"{tid}\"\ncommand = {json.dumps(cmd)}\n"
    record = run_plan(write_plan(tmp_path / "six.toml", body), repo)
    assert record.ok
    return repo


def test_forecast_flags_exactly_the_overlapping_pairs(tmp_path):
    repo = six_task_run(tmp_path)
    before = snapshot(repo)
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    fc = forecast_run(Run.open(repo, "six"))
    assert before == snapshot(repo)
    assert git(repo, "for-each-ref", "--format=%(refname) %(objectname)") == refs
    assert [(p.a, p.b, p.kind, p.merge) for p in fc.pairs] == [
        ("A", "B", "overlap", "conflict"), ("C", "D", "same-file", "unchecked")]
    assert [(p.a, p.b) for p in fc.colliding] == [("A", "B")]
    ab = fc.pairs[0]
    assert ab.conflict_paths == ["shared.txt"]
    [fp] = ab.paths
    assert fp.path == "shared.txt" and fp.overlap
    assert [(r.start, r.count) for r in fp.a_ranges] == [(4, 1)] == [(r.start, r.count) for r in fp.b_ranges]
    [cd] = fc.pairs[1].paths
    assert [r.start for r in cd.a_ranges] == [1] and [r.start for r in cd.b_ranges] == [9]
    assert {t.task_id: t.source for t in fc.tasks} == {t: "branch" for t in "ABCDEF"}
    assert {t.task_id: t.paths for t in fc.tasks}["F"] == ["f.txt"]


def test_cli_conflicts_matrix_and_json(tmp_path):
    repo = six_task_run(tmp_path)
    result = CliRunner().invoke(main, ["conflicts", "six", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split()[1]: line.split()[2:] for line in out.splitlines()
            if line[:1].isdigit() and len(line.split()) == 8}
    assert rows["A"] == ["-", "X", ".", ".", ".", "."]
    assert rows["C"] == [".", ".", "-", "~", ".", "."]
    assert rows["E"] == [".", ".", ".", ".", "-", "."]
    assert "A x B: merge conflicts" in out and "shared.txt: base lines 4 (A) vs 4 (B)" in out
    result = CliRunner().invoke(main, ["conflicts", "six", "--repo", str(repo), "--json"])
    fc = ConflictForecast.model_validate_json(result.stdout)
    assert len(fc.pairs) == 2
    result = CliRunner().invoke(main, ["conflicts", "nope", "--repo", str(repo)])
    assert result.exit_code == 2 and "unknown run 'nope'" in result.stderr


def test_identical_changes_overlap_but_merge_clean(tmp_path):
    repo = make_repo(tmp_path / "repo", {"s.txt": TEN})
    body = '[run]\nsandbox = "local"\nid = "same"\n'
    for tid in ("p", "q"):
        body += f"\n[[task]]\nid = \"{tid}\"\ncommand = {json.dumps(set_line('s.txt', 2, 'same'))}\n"
    run_plan(write_plan(tmp_path / "p.toml", body), repo)
    fc = forecast_run(Run.open(repo, "same"))
    assert [(p.kind, p.merge) for p in fc.pairs] == [("overlap", "clean")]
    assert fc.colliding == []


def test_running_tasks_are_read_from_attempt_refs_and_live_worktrees(tmp_path):
    repo = make_repo(tmp_path / "repo", {"s.txt": TEN})
    ws = Workspace(repo)
    git_repo = ws.repo()
    base = git(repo, "rev-parse", "HEAD")
    record = RunRecord(run_id="live", repo=str(ws.common), base_ref="main", base_commit=base,
                       sandbox="local", max_parallel=3, task_order=["done", "attempted", "live"])
    store = RunStore(ws, "live")
    store.create(record)
    # "attempted": its first attempt finished (a ref) and no result yet
    idx = pygit2.Index()
    idx.read_tree(git_repo[base].peel(pygit2.Commit).tree)
    idx.add(pygit2.IndexEntry("s.txt", git_repo.create_blob(TEN.replace("line 7", "seven")),
                              pygit2.enums.FileMode.BLOB))
    sig = pygit2.Signature("a", "a@example.com")
    c = git_repo.create_commit(None, sig, sig, "attempt", idx.write_tree(git_repo), [pygit2.Oid(hex=base)])
    ws.set_ref(attempt_ref("live", "attempted", 1), str(c))
    store.attempt_dir("attempted", 1).mkdir(parents=True)
    # "live": its attempt is still editing its worktree
    store.attempt_dir("live", 1).mkdir(parents=True)
    wt = ws.create_worktree("harness-live-live-1", ws.root / "worktrees" / "live" / "live.1", base)
    (wt / "s.txt").write_text(TEN.replace("line 8", "eight"))
    (wt / "untracked.txt").write_text("new\n")
    fc = forecast_run(Run.open(repo, "live"))
    sources = {t.task_id: (t.status, t.source) for t in fc.tasks}
    assert sources == {"done": ("running", None), "attempted": ("running", "attempt"),
                       "live": ("running", "worktree")}
    assert {t.task_id: t.paths for t in fc.tasks}["live"] == ["s.txt", "untracked.txt"]
    [pair] = fc.pairs
    assert (pair.a, pair.b, pair.kind, pair.merge) == ("attempted", "live", "overlap", "unchecked")
    assert pair.collides


def test_overlapping_write_scopes_are_warned_before_any_work_and_shown_by_conflicts(tmp_path):
    """Declared scopes are compared when the run starts: only tasks that may run side
    by side (neither waits for the other), only tasks that declare a scope."""
    repo = make_repo(tmp_path / "repo", {"src/x/y.py": "y = 1\n", "docs/a.md": "a\n"})
    body = '[run]\nsandbox = "local"\nid = "sc"\n'
    for tid, scope, deps in (("a", ["src/x/**"], []), ("b", ["src/x/y.py"], []), ("c", ["docs/**"], []),
                             ("d", ["src/**"], ["a"]), ("free", [], [])):
        body += (f'\n[[task]]\nid = "{tid}"\ncommand = "true"\nwrite_scope = {json.dumps(scope)}\n'
                 f"depends_on = {json.dumps(deps)}\n")
    lines: list[str] = []
    record = run_plan(write_plan(tmp_path / "sc.toml", body), repo, progress=lines.append)

    assert [(o.a, o.b) for o in record.scope_overlaps] == [("a", "b"), ("b", "d")]
    [warning] = [line for line in lines if "write scopes overlap" in line]
    assert "2 pair(s)" in warning and "a & b, b & d" in warning and "harness conflicts sc" in warning
    result = CliRunner().invoke(main, ["conflicts", "sc", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "a x b: src/x/** | src/x/y.py" in result.stdout and "b x d: src/x/y.py | src/**" in result.stdout
    fc = forecast_run(Run.open(repo, "sc"))
    assert fc.pairs == [] and [(o.a, o.b) for o in fc.scope_overlaps] == [("a", "b"), ("b", "d")]
