"""Every bad input: one clear line on stderr, exit 2, and the repo exactly as it was."""

from __future__ import annotations

import pytest

from gitutil import git, harness, make_repo, snapshot, write_plan

GOOD_TASK = '[[task]]\nid = "a"\ncommand = "echo a > a.txt"\n'

CASES = {
    "unknown base ref": ('[run]\nsandbox = "local"\nbase = "no-such-branch"\n' + GOOD_TASK,
                         "unknown ref 'no-such-branch'"),
    "not toml": ("[run\nsandbox = local", "not valid TOML"),
    "bad field": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ntimeout_s = "soon"\n',
                  "task 'a' field timeout_s"),
    "unknown field": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\nretires = 2\n',
                      "task 'a' field retires"),
    "bad run field": ('[run]\nsandbox = "local"\nmax_parallel = 0\n' + GOOD_TASK, "run.max_parallel"),
    "zero stall": ('[run]\nsandbox = "local"\nstall_s = 0\n' + GOOD_TASK, "run.stall_s"),
    "zero steps": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\nmax_steps = 0\n',
                   "task 'a' field max_steps"),
    "unknown strategy": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\nstrategy = "nope.toml"\n',
                         "no strategy file nope.toml"),
    "duplicate ids": ('[run]\nsandbox = "local"\n' + GOOD_TASK + GOOD_TASK, "duplicate task id 'a'"),
    "cycle": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\ndepends_on = ["b"]\n'
              '[[task]]\nid = "b"\ncommand = "x"\ndepends_on = ["a"]\n', "dependency cycle"),
    "missing dependency": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\ncommand = "x"\n'
                           'depends_on = ["ghost"]\n', "no task 'ghost'"),
    "no command": ('[run]\nsandbox = "local"\n[[task]]\nid = "a"\n', "needs a command"),
    "no tasks": ('[run]\nsandbox = "local"\n', "task"),
    "bad task id": ('[run]\nsandbox = "local"\n[[task]]\nid = "a/b"\ncommand = "x"\n', "field id"),
}


def _assert_one_clean_line(proc, expected: str, plan=None):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness: ")
    assert expected in lines[0]
    if plan is not None and "TOML" not in expected and "strategy" not in expected:
        assert str(plan) in lines[0] or "unknown ref" in lines[0]
    assert "Traceback" not in proc.stderr


def _assert_untouched(repo, before):
    assert snapshot(repo) == before
    assert not (repo / ".git" / "harness").exists()
    assert not (repo / ".git" / "worktrees").exists()
    assert git(repo, "for-each-ref", "refs/heads/harness", "refs/harness") == ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_plan_exits_2_and_creates_nothing(tmp_path, case):
    body, expected = CASES[case]
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", body)
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo))
    _assert_one_clean_line(proc, expected, plan)
    _assert_untouched(repo, before)


def test_not_a_git_repository(tmp_path):
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\n' + GOOD_TASK)
    target = tmp_path / "plain"
    target.mkdir()
    proc = harness("run", str(plan), "--repo", str(target))
    _assert_one_clean_line(proc, "not a git repository")
    assert list(target.iterdir()) == []


def test_missing_plan_file(tmp_path):
    repo = make_repo(tmp_path / "repo")
    proc = harness("run", str(tmp_path / "absent.toml"), "--repo", str(repo))
    _assert_one_clean_line(proc, "no such file")


def test_existing_run_id(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\nid = "dup"\n' + GOOD_TASK)
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    before = snapshot(repo)
    refs = git(repo, "for-each-ref")
    record = (repo / ".git/harness/runs/dup/record.json").read_bytes()
    proc = harness("run", str(plan), "--repo", str(repo))
    _assert_one_clean_line(proc, "run 'dup' exists already")
    assert snapshot(repo) == before
    assert git(repo, "for-each-ref") == refs
    assert (repo / ".git/harness/runs/dup/record.json").read_bytes() == record


def test_unknown_run_for_show_and_clean(tmp_path):
    repo = make_repo(tmp_path / "repo")
    for cmd in ("show", "clean"):
        _assert_one_clean_line(harness(cmd, "nope", "--repo", str(repo)), "unknown run 'nope'")
