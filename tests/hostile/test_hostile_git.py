"""Agents that attack git through their worktree: they delete or redirect its `.git`,
put a repository of their own there, plant hooks, or write names git finds awkward.
Each runs through a real `harness run` next to a well-behaved agent, on a user's
repository that is mid-work (a branch checked out, staged and untracked files),
on both sandboxes. Whatever the agent does, the user's repository stays byte for
byte as it was, the other agent's branch holds exactly its own change, nothing
named `.git` is committed, and the run ends with a full record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitutil import git, harness, make_user_repo, tree_paths, user_state, write_plan
from harness.errors import GitError
from harness.records import Attempt, RunRecord, TaskStatus
from harness.repo.workspace import Workspace, worktree_name
from sandboxutil import require_docker

BACKENDS = [pytest.param("local", id="local"),
            pytest.param("docker", id="docker", marks=pytest.mark.docker)]

BYSTANDER = '''
[[task]]
id = "bystander"
prompt = "behave"
command = "echo fine > fine.txt"
'''


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "docker":
        require_docker()
    return request.param


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_user_repo(tmp_path / "repo")


def _task(tid: str, command: str) -> str:
    return f"\n[[task]]\nid = \"{tid}\"\nprompt = \"attack\"\ncommand = '''{command}'''\n"


def run(tmp_path: Path, repo: Path, backend: str, tasks: str, run_id: str = "hostile") -> RunRecord:
    """`harness run` as a user runs it; the record it prints."""
    plan = write_plan(tmp_path / "plan.toml",
                      f'[run]\nid = "{run_id}"\nsandbox = "{backend}"\nmax_parallel = 4\nkeep_worktrees = "all"\n'
                      f'timeout_s = 120\n{tasks}{BYSTANDER}')
    proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return RunRecord.model_validate_json(proc.stdout)


def only_attempt(record: RunRecord, tid: str) -> Attempt:
    result = record.tasks[tid]
    assert len(result.attempts) == 1
    return result.attempts[0]


def changed(repo: Path, base: str, commit: str) -> list[str]:
    return git(repo, "diff", "--name-only", base, commit).splitlines()


def assert_no_git_entry(repo: Path, commit: str | None) -> None:
    if commit is None:
        return
    for path in tree_paths(repo, commit):
        assert all(part.lower() != b".git" for part in path.split(b"/")), path


def assert_contained(repo: Path, record: RunRecord, before: dict, tasks: list[str]) -> None:
    """What holds whatever an agent did."""
    assert user_state(repo) == before
    assert record.status == "finished"
    assert set(record.tasks) == {*tasks, "bystander"}
    for tid, result in record.tasks.items():
        assert isinstance(result.status, TaskStatus)
        for attempt in result.attempts:
            assert_no_git_entry(repo, attempt.commit)
        assert_no_git_entry(repo, result.head_commit)
    bystander = record.tasks["bystander"]
    assert bystander.status == TaskStatus.succeeded
    assert changed(repo, record.base_commit, bystander.branch) == ["fine.txt"]
    assert git(repo, "show", f"{bystander.branch}:fine.txt") == "fine"
    # the worktrees' metadata still names the worktrees the harness made
    common = repo / ".git"
    for wt in record.worktrees:
        assert (Path(wt) / ".git").read_text().startswith(f"gitdir: {common}/worktrees/")


def assert_restored_and_committed_own_work(repo: Path, record: RunRecord, tid: str,
                                           files: list[str], replaced: str) -> None:
    attempt = only_attempt(record, tid)
    assert attempt.status == TaskStatus.succeeded, attempt.reason
    assert f"the agent's .git was {replaced}; restored from the host" in attempt.reason
    assert changed(repo, record.base_commit, attempt.commit) == files
    assert record.tasks[tid].head_commit == attempt.commit


def test_deleted_dot_git(backend, repo, tmp_path):
    before = user_state(repo)
    record = run(tmp_path, repo, backend, _task("rmgit", "rm -f .git && echo mine > mine.txt"))
    assert_contained(repo, record, before, ["rmgit"])
    assert_restored_and_committed_own_work(repo, record, "rmgit", ["mine.txt"], "nothing (it was deleted)")


def test_dot_git_pointed_at_the_main_git_dir(backend, repo, tmp_path):
    before = user_state(repo)
    record = run(tmp_path, repo, backend,
                 _task("tomain", f"printf 'gitdir: {repo / '.git'}\\n' > .git && echo mine > mine.txt"))
    assert_contained(repo, record, before, ["tomain"])
    assert_restored_and_committed_own_work(repo, record, "tomain", ["mine.txt"],
                                           "a file pointing elsewhere")


def test_dot_git_pointed_at_the_root(backend, repo, tmp_path):
    before = user_state(repo)
    record = run(tmp_path, repo, backend, _task("toroot", "printf 'gitdir: /\\n' > .git && echo mine > mine.txt"))
    assert_contained(repo, record, before, ["toroot"])
    assert_restored_and_committed_own_work(repo, record, "toroot", ["mine.txt"],
                                           "a file pointing elsewhere")


def test_dot_git_symlinked_to_the_main_git_dir(backend, repo, tmp_path):
    before = user_state(repo)
    record = run(tmp_path, repo, backend,
                 _task("symlink", f"rm -f .git && ln -s {repo / '.git'} .git && echo mine > mine.txt"))
    assert_contained(repo, record, before, ["symlink"])
    assert_restored_and_committed_own_work(repo, record, "symlink", ["mine.txt"], "a symlink")


def test_dot_git_pointed_at_another_agents_worktree(backend, repo, tmp_path):
    """The thief finishes first and aims its commit at the victim, who is still working."""
    victim_meta = repo / ".git" / "worktrees" / worktree_name("steal", "victim.1")
    tasks = (_task("victim", "echo victim > victim.txt && sleep 4 && echo more >> victim.txt")
             + _task("thief", f"printf 'gitdir: {victim_meta}\\n' > .git && echo thief > thief.txt"))
    before = user_state(repo)
    record = run(tmp_path, repo, backend, tasks, run_id="steal")
    assert_contained(repo, record, before, ["victim", "thief"])
    assert_restored_and_committed_own_work(repo, record, "thief", ["thief.txt"], "a file pointing elsewhere")
    victim = record.tasks["victim"]
    assert victim.status == TaskStatus.succeeded and victim.attempts[0].reason is None
    assert changed(repo, record.base_commit, victim.branch) == ["victim.txt"]
    assert git(repo, "show", f"{victim.branch}:victim.txt") == "victim\nmore"


def test_git_init_in_place_of_dot_git_and_nested_repositories(backend, repo, tmp_path):
    ident = "-c user.name=a -c user.email=a@example.com"
    command = (f"rm -f .git && git init -q && echo mine > mine.txt && git add mine.txt && "
               f"git {ident} commit -q -m own && "
               f"mkdir -p vendor/lib && cd vendor/lib && git init -q && echo lib > lib.txt && "
               f"git add lib.txt && git {ident} commit -q -m lib && cd ../.. && "
               f"mkdir -p odd && printf 'gitdir: {repo / '.git'}\\n' > odd/.git && echo o > odd/o.txt && "
               f"mkdir -p up && echo x > up/.GIT")
    before = user_state(repo)
    record = run(tmp_path, repo, backend, _task("init", command))
    assert_contained(repo, record, before, ["init"])
    attempt = only_attempt(record, "init")
    assert attempt.status == TaskStatus.succeeded, attempt.reason
    assert "the agent's .git was a directory; restored from the host" in attempt.reason
    assert "left out of the commit" in attempt.reason
    for left_out in ("vendor/lib/.git", "odd/.git"):
        assert left_out in attempt.reason
    assert changed(repo, record.base_commit, attempt.commit) == ["mine.txt", "odd/o.txt", "vendor/lib/lib.txt"]
    assert git(repo, "cat-file", "-t", attempt.commit) == "commit"
    assert git(repo, "rev-list", "--count", f"{record.base_commit}..{attempt.commit}") == "1"


def test_planted_hooks_never_run(backend, repo, tmp_path):
    """A repository of the agent's own whose config points every hook (and the
    fsmonitor) at a script that would leave a mark on the host if it ran."""
    mark = tmp_path / "hook-ran"
    hook = f"#!/bin/sh\\necho ran >> {mark}\\n"
    names = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
             "reference-transaction", "post-index-change", "pre-auto-gc", "post-rewrite")
    command = ("rm -f .git && git init -q && mkdir -p hooks && "
               + " && ".join(f"printf '{hook}' > hooks/{n}" for n in names)
               + " && chmod +x hooks/* && git config core.hooksPath \"$PWD/hooks\" && "
               "git config core.fsmonitor \"$PWD/hooks/post-commit\" && echo mine > mine.txt")
    before = user_state(repo)
    record = run(tmp_path, repo, backend, _task("hooks", command))
    assert_contained(repo, record, before, ["hooks"])
    attempt = only_attempt(record, "hooks")
    assert attempt.status == TaskStatus.succeeded, attempt.reason
    assert "mine.txt" in changed(repo, record.base_commit, attempt.commit)
    assert not mark.exists()


def run_one_cleanly(tmp_path, repo, backend, task_id: str, command: str):
    """Run one hostile task beside the bystander; the user's repository must be as it
    was and the attempt must succeed with nothing to report. Returns (record, attempt)."""
    before = user_state(repo)
    record = run(tmp_path, repo, backend, _task(task_id, command))
    assert_contained(repo, record, before, [task_id])
    attempt = only_attempt(record, task_id)
    assert attempt.status == TaskStatus.succeeded and attempt.reason is None, attempt.reason
    return record, attempt


def test_file_names_that_are_not_utf8(backend, repo, tmp_path):
    """Committed byte for byte; the diff stat shows the odd bytes escaped."""
    command = ("touch \"$(printf 'caf\\351.txt')\" && mkdir \"$(printf 'd\\377')\" && "
               "echo x > \"$(printf 'd\\377/f\\376')\"")
    record, attempt = run_one_cleanly(tmp_path, repo, backend, "bytes", command)
    added = set(tree_paths(repo, attempt.commit)) - set(tree_paths(repo, record.base_commit))
    assert added == {b"caf\xe9.txt", b"d\xff", b"d\xff/f\xfe"}
    assert sorted(attempt.diff.paths) == ["caf\\xe9.txt", "d\\xff/f\\xfe"]


def test_files_named_like_refs(backend, repo, tmp_path):
    command = ("mkdir -p refs/heads refs/tags objects/ab && echo a > refs/heads/main && "
               "echo b > refs/tags/v1 && echo c > HEAD && echo d > x.lock && echo e > packed-refs && "
               "echo f > index && echo g > ORIG_HEAD && echo h > objects/ab/cdef && echo i > config")
    record, attempt = run_one_cleanly(tmp_path, repo, backend, "refnames", command)
    assert changed(repo, record.base_commit, attempt.commit) == [
        "HEAD", "ORIG_HEAD", "config", "index", "objects/ab/cdef", "packed-refs", "refs/heads/main",
        "refs/tags/v1", "x.lock"]
    assert git(repo, "show", f"{attempt.commit}:refs/heads/main") == "a"


def test_ten_thousand_small_files(backend, repo, tmp_path):
    command = ("python3 -c \"import os\nfor i in range(10000):\n    d = f'gen/{i % 100}'\n"
               "    os.makedirs(d, exist_ok=True)\n    open(f'{d}/f{i}.txt', 'w').write(str(i))\"")
    record, attempt = run_one_cleanly(tmp_path, repo, backend, "many", command)
    assert attempt.diff.files_changed == 10000
    assert git(repo, "show", f"{attempt.commit}:gen/7/f4507.txt") == "4507"


def test_remove_worktree_ignores_a_redirected_dot_git(repo):
    """Cleaning a worktree whose `.git` names another worktree's metadata (or any
    other directory) removes that worktree and its own metadata, nothing else."""
    ws = Workspace(repo)
    head = git(repo, "rev-parse", "HEAD")
    top = ws.root / "worktrees" / "rm"
    victim = ws.create_worktree("harness-rm-victim-1", top / "victim.1", head)
    thief = ws.create_worktree("harness-rm-thief-1", top / "thief.1", head)
    (thief / ".git").write_text(f"gitdir: {ws.common}/worktrees/harness-rm-victim-1\n")
    fresh = Workspace(repo)  # a later `harness clean`: nothing known but what is on disk
    fresh.remove_worktree(thief)
    assert not thief.exists()
    assert not (ws.common / "worktrees" / "harness-rm-thief-1").exists()
    assert (ws.common / "worktrees" / "harness-rm-victim-1" / "HEAD").exists()
    assert (victim / "README.md").exists()
    with pytest.raises(GitError, match="refusing to remove"):
        fresh.remove_worktree(repo)
    assert (repo / "README.md").exists() and (repo / ".git" / "HEAD").exists()
    assert os.listdir(repo / ".git" / "worktrees") == ["harness-rm-victim-1"]
