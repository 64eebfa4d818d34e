"""Helpers for tests: real git repositories in temp dirs and snapshots of what the
user owns (HEAD, index, working tree, refs outside the harness's namespaces)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pygit2

HARNESS_REFS = ("refs/heads/harness/", "refs/harness/", "refs/notes/harness")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, n_files: int = 0) -> Path:
    """A repository with one commit on `main` holding `files` (and n generated ones)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    files = dict(files or {"README.md": "target\n"})
    for i in range(n_files):
        files[f"src/pkg{i % 10}/mod{i}.py"] = "".join(f"x{j} = {j}\n" for j in range(30))
    for name, text in files.items():
        p = path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    return path


def snapshot(repo: Path) -> dict:
    """What the user owns, byte for byte."""
    gitdir = repo / ".git"
    files = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        for n in names:
            p = Path(root) / n
            files[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
    refs = [line for line in git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith(HARNESS_REFS)]
    index = gitdir / "index"
    return {
        "HEAD": (gitdir / "HEAD").read_text(),
        "head_commit": git(repo, "rev-parse", "HEAD"),
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else None,
        "files": files,
        "refs": refs,
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
    }


def harness(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def write_plan(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def make_user_repo(path: Path) -> Path:
    """A repository as a user has it mid-work: branch `work` checked out, a staged
    file, a modified tracked file and an untracked one."""
    make_repo(path, {"README.md": "target\n", "src/app.py": "x = 1\n"})
    git(path, "checkout", "-q", "-b", "work")
    (path / "staged.txt").write_text("staged\n")
    git(path, "add", "staged.txt")
    (path / "src/app.py").write_text("x = 2\n")
    (path / "untracked.txt").write_text("untracked\n")
    git(path, "tag", "v1")
    return path


def user_state(repo: Path) -> dict:
    """Everything of the user's repository the harness must never change, byte for
    byte: HEAD, index, config, every ref outside the harness's namespaces (and
    where symbolic refs point), and every working-tree file, untracked included."""
    gitdir = repo / ".git"

    def digest(p: Path) -> str | None:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None

    files = {}
    for root, dirs, names in os.walk(repo):
        dirs[:] = [d for d in dirs if not (Path(root) == repo and d == ".git")]
        for n in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = Path(root) / n
            rel = os.fsencode(p.relative_to(repo))
            files[rel] = ("link", os.readlink(p)) if p.is_symlink() else ("file", digest(p))
    refs = [line for line in git(repo, "for-each-ref",
                                 "--format=%(refname) %(objectname) %(symref)").splitlines()
            if not line.startswith(HARNESS_REFS)]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not refresh the index
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            check=True, capture_output=True, env=env).stdout
    return {
        "HEAD": (gitdir / "HEAD").read_bytes(),
        "index": digest(gitdir / "index"),
        "config": digest(gitdir / "config"),
        "packed-refs": digest(gitdir / "packed-refs"),
        "refs": refs,
        "files": files,
        "status": status,
    }


def tree_paths(repo: Path, commit: str) -> list[bytes]:
    """Every path (files and directories, raw bytes) in `commit`'s tree."""
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-t", "-z", "--name-only", commit],
                         check=True, capture_output=True).stdout
    return [p for p in out.split(b"\0") if p]


def commit_edits(repo_path: Path, base: str, edits: dict[str, str], when: int) -> str:
    """An agent's commit on `base` with `edits` (path -> text), dated `when`, no ref moved."""
    repo = pygit2.Repository(str(repo_path))
    parent = repo[base].peel(pygit2.Commit)
    index = pygit2.Index()
    index.read_tree(parent.tree)
    for path, data in edits.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(data.encode()), pygit2.enums.FileMode.BLOB))
    sig = pygit2.Signature("agent", "agent@example.com", when, 0)
    return str(repo.create_commit(None, sig, sig, f"agent {when}", index.write_tree(repo), [parent.id]))
