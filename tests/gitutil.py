"""Helpers for tests: real git repositories in temp dirs and snapshots of what the
user owns (HEAD, index, working tree, refs outside the harness's namespaces)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
