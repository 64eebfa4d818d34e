"""The guard on the user's repository: it sees every change to what the user owns
and nothing the harness writes in its own namespaces."""

from __future__ import annotations

from gitutil import git, make_user_repo
from harness.repo.guard import RepoGuard
from harness.repo.workspace import Workspace


def _guard(tmp_path):
    repo = make_user_repo(tmp_path / "repo")
    ws = Workspace(repo)
    return repo, ws, RepoGuard(ws)


def test_nothing_changed_and_harness_refs_are_not_a_change(tmp_path):
    repo, ws, guard = _guard(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    ws.set_ref("refs/heads/harness/r/t", head)
    ws.set_ref("refs/harness/r/t/1", head)
    ws.write_note(head, "a note")
    (repo / "untracked.txt").write_text("the user's files are theirs to change\n")
    assert guard.check() == []


def test_a_detached_head_is_named(tmp_path):
    repo, _, guard = _guard(tmp_path)
    git(repo, "checkout", "-q", "--detach")
    assert guard.check()[0] == ("HEAD moved from 'ref: refs/heads/work' to "
                             f"'{git(repo, 'rev-parse', 'HEAD')}'")
    assert guard.check() == []  # reported once


def test_a_commit_on_the_users_branch_moves_head_and_the_ref(tmp_path):
    repo, _, guard = _guard(tmp_path)
    old = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "-m", "sneaky")
    new = git(repo, "rev-parse", "HEAD")
    assert guard.check() == [f"HEAD's commit changed from {old} to {new}", "the index was rewritten",
                             f"ref refs/heads/work moved from {old} to {new}"]


def test_index_config_and_refs_outside_the_harness(tmp_path):
    repo, ws, guard = _guard(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "add", "untracked.txt")
    git(repo, "config", "core.hooksPath", "/tmp/hooks")
    git(repo, "tag", "-d", "v1")
    git(repo, "update-ref", "refs/heads/harnessy", head)  # close to the namespace, not in it
    assert guard.check() == ["the index was rewritten", "the repository's config file changed",
                             f"ref refs/heads/harnessy was created at {head}",
                             f"ref refs/tags/v1 was deleted (was {head})"]
