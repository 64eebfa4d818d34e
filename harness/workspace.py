"""All git writes of the harness go through here.

Ref names are validated, no hooks run (pygit2 runs none), and every write to the
shared repository's refs is serialized by one lock: a thread lock inside the
process and an flock on `<common git dir>/harness/lock` across processes.
Worktrees are created detached, so an attempt never needs a branch of its own
until its work is committed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pygit2

from .errors import GitError, RepoError
from .schema import DiffStat

AUTHOR = ("harness", "harness@localhost")
BRANCH_PREFIX = "refs/heads/harness/"
HIDDEN_PREFIX = "refs/harness/"
NOTES_REF = "refs/notes/harness"
_process_lock = threading.RLock()


def open_repo(path: Path | str) -> pygit2.Repository:
    """The repository at or above `path`. Raises RepoError when there is none."""
    found = pygit2.discover_repository(str(path))
    if not found:
        raise RepoError(f"{path}: not a git repository")
    repo = pygit2.Repository(found)
    if repo.is_bare:
        raise RepoError(f"{path}: a bare repository has no working tree to run against")
    return repo


def common_dir(repo: pygit2.Repository) -> Path:
    """The common git dir (the main `.git`, also when `repo` is a worktree)."""
    gitdir = Path(repo.path)
    commondir = gitdir / "commondir"
    if commondir.exists():
        return (gitdir / commondir.read_text().strip()).resolve()
    return gitdir.resolve()


def resolve_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit:
    """The commit a ref, a branch or a commit id names. Raises RepoError."""
    try:
        obj = repo.revparse_single(ref)
        commit = obj.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        raise RepoError(f"unknown ref {ref!r}") from None
    return commit


def branch_ref(run_id: str, name: str) -> str:
    return f"{BRANCH_PREFIX}{run_id}/{name}"


def attempt_ref(run_id: str, task_id: str, attempt: int) -> str:
    return f"{HIDDEN_PREFIX}{run_id}/{task_id}/{attempt}"


def _check_ref_name(name: str) -> None:
    if not (name.startswith(BRANCH_PREFIX) or name.startswith(HIDDEN_PREFIX) or name == NOTES_REF):
        raise GitError(f"refusing to write {name}: outside the harness's namespaces")
    if not pygit2.reference_is_valid_name(name):
        raise GitError(f"invalid ref name {name!r}")


def scope_matcher(globs: list[str]):
    """A predicate for repo-relative paths: `*` stays inside a directory, `**`
    crosses directories, a trailing `/` means everything below. Empty: all paths."""
    if not globs:
        return lambda path: True
    parts = []
    for glob in globs:
        g = glob.strip().lstrip("/")
        if g.endswith("/"):
            g += "**"
        rx, i = "", 0
        while i < len(g):
            if g.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif g.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif g[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif g[i] == "?":
                rx, i = rx + "[^/]", i + 1
            else:
                rx, i = rx + re.escape(g[i]), i + 1
        parts.append(rx)
    pattern = re.compile("^(?:" + "|".join(parts) + ")$")
    return lambda path: bool(pattern.match(path))


class Workspace:
    """The shared repository, seen from the harness."""

    def __init__(self, path: Path | str) -> None:
        repo = open_repo(path)
        self.workdir = Path(repo.workdir).resolve()
        self.common = common_dir(repo)
        self.root = self.common / "harness"
        self._repo_path = repo.path

    # --- locking and repo handles ----------------------------------------------------

    def repo(self) -> pygit2.Repository:
        """A fresh handle; pygit2 objects are not shared across threads."""
        return pygit2.Repository(self._repo_path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize writes to the shared repository, across threads and processes."""
        with _process_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / "lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    # --- refs ------------------------------------------------------------------------

    def set_ref(self, name: str, target: str, message: str = "harness") -> None:
        _check_ref_name(name)
        with self.lock():
            self.repo().create_reference(name, pygit2.Oid(hex=target), force=True, message=message)

    def delete_ref(self, name: str) -> None:
        _check_ref_name(name)
        with self.lock():
            repo = self.repo()
            if name in repo.references:
                repo.references.delete(name)

    def ref_target(self, name: str) -> str | None:
        ref = self.repo().references.get(name)
        return str(ref.resolve().target) if ref is not None else None

    def cas_update_ref(self, name: str, new: str, old: str | None) -> None:
        """Move any ref to `new` only if it still points at `old` (git's own CAS).
        The one write outside the harness's namespaces; used by an explicit land."""
        with self.lock():
            args = ["git", "-C", str(self.workdir), "update-ref", "-m", "harness land", name, new]
            args.append(old if old is not None else "0" * 40)
            proc = subprocess.run(args, capture_output=True, text=True)
            if proc.returncode != 0:
                raise GitError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                               f"cannot update {name}")

    def checked_out_branches(self) -> dict[str, Path]:
        """Each branch (full ref name) checked out in a worktree of the repository, the
        main one or a linked one, with that worktree's path: git's own view
        (`git worktree list`). The harness's worktrees are detached and never appear."""
        proc = subprocess.run(["git", "-C", str(self.workdir), "worktree", "list", "--porcelain", "-z"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise GitError(f"cannot list worktrees: {proc.stderr.strip() or proc.returncode}")
        out: dict[str, Path] = {}
        path = None
        for field in proc.stdout.split("\0"):
            if field.startswith("worktree "):
                path = Path(field.removeprefix("worktree "))
            elif field.startswith("branch ") and path is not None:
                out[field.removeprefix("branch ")] = path
        return out

    def write_note(self, commit: str, text: str, ref: str = NOTES_REF) -> str:
        """Attach `text` as the note of `commit` under `ref` (refs/notes/harness),
        replacing an older note. Returns the note blob id."""
        _check_ref_name(ref)
        sig = pygit2.Signature(*AUTHOR)
        with self.lock():
            oid = self.repo().create_note(text, sig, sig, commit, ref, True)
        return str(oid)

    def read_note(self, commit: str, ref: str = NOTES_REF) -> str | None:
        try:
            return self.repo().lookup_note(commit, ref).message
        except KeyError:
            return None

    # --- worktrees -------------------------------------------------------------------

    def create_worktree(self, name: str, path: Path, commit_id: str) -> Path:
        """A detached worktree of `commit_id` at `path`, known to git as `name`
        (so `git worktree list` shows it and git commands work inside it)."""
        meta = self.common / "worktrees" / name
        path = path.resolve()
        with self.lock():
            if meta.exists() or path.exists():
                raise GitError(f"worktree {name} already exists")
            meta.mkdir(parents=True)
            (meta / "gitdir").write_text(f"{path / '.git'}\n")
            (meta / "commondir").write_text("../..\n")
            (meta / "HEAD").write_text(f"{commit_id}\n")
        path.mkdir(parents=True)
        (path / ".git").write_text(f"gitdir: {meta}\n")
        wt = pygit2.Repository(str(path))
        commit = wt[pygit2.Oid(hex=commit_id)].peel(pygit2.Commit)
        wt.checkout_tree(commit.tree, strategy=pygit2.enums.CheckoutStrategy.FORCE)
        return path

    @contextmanager
    def scratch_worktree(self, name: str, path: Path, commit_id: str) -> Iterator[Path]:
        """A detached worktree that lives only inside the with-block (tests, benchmarks)."""
        self.create_worktree(name, path, commit_id)
        try:
            yield path
        finally:
            self.remove_worktree(path)

    def remove_worktree(self, path: Path) -> None:
        path = Path(path)
        gitfile = path / ".git"
        meta = None
        if gitfile.is_file():
            text = gitfile.read_text().strip()
            if text.startswith("gitdir:"):
                meta = Path(text.split(":", 1)[1].strip())
        shutil.rmtree(path, ignore_errors=True)
        if meta is not None and meta.parent == self.common / "worktrees":
            shutil.rmtree(meta, ignore_errors=True)

    def forget_worktree(self, name: str) -> None:
        """Drop git's metadata of a harness worktree whose checkout is gone."""
        if name.startswith("harness-") and "/" not in name and name not in (".", ".."):
            shutil.rmtree(self.common / "worktrees" / name, ignore_errors=True)

    # --- commits ---------------------------------------------------------------------

    def commit_worktree(self, path: Path, base_commit: str, message: str) -> tuple[str | None, DiffStat]:
        """Commit everything changed in the worktree (tracked, untracked, deleted;
        ignored files stay out) on top of `base_commit`, without moving any ref.
        Returns (commit id or None when nothing changed, the diff)."""
        wt = pygit2.Repository(str(path))
        index = wt.index
        for file, flags in wt.status().items():
            if flags & pygit2.enums.FileStatus.IGNORED:
                continue
            if flags & pygit2.enums.FileStatus.WT_DELETED:
                index.remove(file)
            else:
                index.add(file)
        index.write()
        tree_id = index.write_tree()
        base = wt[pygit2.Oid(hex=base_commit)].peel(pygit2.Commit)
        if tree_id == base.tree_id:
            return None, DiffStat()
        diff = wt.diff(base.tree, wt[tree_id])
        diff.find_similar()
        stats = diff.stats
        paths = sorted({p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)})
        sig = pygit2.Signature(*AUTHOR)
        commit = wt.create_commit(None, sig, sig, message, tree_id, [base.id])
        wt.set_head(commit)  # the worktree's own HEAD: it now reads clean at the commit
        return str(commit), DiffStat(files_changed=stats.files_changed, insertions=stats.insertions,
                                     deletions=stats.deletions, paths=paths)

    def merged_base(self, commits: list[str], message: str) -> str:
        """One commit that holds all of `commits`: the commit itself when there is
        one, else merge commits of them (no ref moves). Raises GitError on conflict."""
        repo = self.repo()
        sig = pygit2.Signature(*AUTHOR)
        acc = pygit2.Oid(hex=commits[0])
        for other in commits[1:]:
            theirs = pygit2.Oid(hex=other)
            index = repo.merge_commits(acc, theirs)
            if index.conflicts is not None:
                paths = sorted({(o or t or a).path for a, o, t in index.conflicts})
                raise GitError(f"dependencies conflict in {', '.join(paths)}")
            acc = repo.create_commit(None, sig, sig, message, index.write_tree(repo), [acc, theirs])
        return str(acc)


def worktree_name(run_id: str, task_id: str, attempt: int) -> str:
    return f"harness-{run_id}-{task_id}-{attempt}"
