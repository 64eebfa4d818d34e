"""All git writes of the harness go through here.

Ref names are validated, no hooks run (pygit2 runs none; the few `git` calls pass
`core.hooksPath=/dev/null`), and every write to the shared repository's refs is
serialized by one lock: a thread lock inside the process and an flock on
`<common git dir>/harness/lock` across processes. Worktrees are created detached,
so an attempt never needs a branch of its own until its work is committed.

Nothing inside a worktree is trusted: an agent can delete or rewrite its `.git`
file, or turn it into a directory or a symlink. So a worktree is always opened
through the metadata dir the harness created for it (`<common>/worktrees/<name>`,
no discovery) with its path set explicitly, and its `.git` file is rewritten from
the host before anything is committed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import pygit2
from pygit2.enums import FileStatus, RepositoryOpenFlag

from ..errors import GitError, RepoError
from ..records import DiffStat
from .staging import MAX_FILE_BYTES, show_path, stage_entry

AUTHOR = ("harness", "harness@localhost")
BRANCH_PREFIX = "refs/heads/harness/"
HIDDEN_PREFIX = "refs/harness/"
NOTES_REF = "refs/notes/harness"
_process_lock = threading.RLock()


def open_git_dir(gitdir: Path | str) -> pygit2.Repository:
    """The repository whose git dir is exactly `gitdir`: no search upwards, no
    `.git` file followed. Raises pygit2.GitError when it is not one."""
    return pygit2.Repository(str(gitdir), flags=RepositoryOpenFlag.NO_SEARCH)


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
        self._worktree_names: dict[Path, str] = {}

    # --- locking and repo handles ----------------------------------------------------

    def repo(self) -> pygit2.Repository:
        """A fresh handle; pygit2 objects are not shared across threads."""
        return open_git_dir(self._repo_path)

    @property
    def git_dir(self) -> Path:
        """The git dir of the user's checkout (HEAD and index live here)."""
        return Path(self._repo_path)

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
            args = ["git", "--git-dir", str(self.git_dir), "-c", "core.hooksPath=/dev/null",
                    "update-ref", "-m", "harness land", name, new]
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
        if not _SIMPLE_NAME.match(name):
            raise GitError(f"invalid worktree name {name!r}")
        meta = self.common / "worktrees" / name
        path = Path(os.path.abspath(path))
        with self.lock():
            if meta.exists() or path.exists():
                raise GitError(f"worktree {name} already exists")
            meta.mkdir(parents=True)
            (meta / "gitdir").write_text(f"{path / '.git'}\n")
            (meta / "commondir").write_text("../..\n")
            (meta / "HEAD").write_text(f"{commit_id}\n")
            self._worktree_names[path] = name
        path.mkdir(parents=True)
        (path / ".git").write_text(f"gitdir: {meta}\n")
        wt = self._open_worktree(path, meta)
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

    def worktree_meta(self, path: Path) -> Path:
        """The metadata dir the harness created for the worktree at `path`, found
        from what the harness wrote (its own map, else the `gitdir` files under the
        common dir), never from the worktree. Raises GitError for a path that is
        not one of the harness's worktrees."""
        path = Path(os.path.abspath(path))
        name = self._worktree_names.get(path)
        if name is None:
            wanted = str(path / ".git")
            for gitdir_file in (self.common / "worktrees").glob("*/gitdir"):
                try:
                    if gitdir_file.read_text().strip() == wanted:
                        name = gitdir_file.parent.name
                        break
                except OSError:
                    continue
        if name is None or not _SIMPLE_NAME.match(name):
            raise GitError(f"{path}: not a worktree of this repository's harness")
        self._worktree_names[path] = name
        return self.common / "worktrees" / name

    def _open_worktree(self, path: Path, meta: Path) -> pygit2.Repository:
        wt = open_git_dir(meta)
        wt.workdir = str(path)
        return wt

    def open_worktree(self, path: Path) -> pygit2.Repository:
        """A handle on the worktree at `path` through its metadata dir, for reading
        (say, the live changes of a running agent). Raises GitError."""
        path = Path(os.path.abspath(path))
        return self._open_worktree(path, self.worktree_meta(path))

    def restore_gitfile(self, path: Path) -> str | None:
        """Rewrite the worktree's `.git` file to point at its metadata dir, removing
        whatever the agent left there. Returns what was replaced, or None."""
        path = Path(os.path.abspath(path))
        meta = self.worktree_meta(path)
        gitfile = path / ".git"
        expected = f"gitdir: {meta}\n"
        replaced = None
        if gitfile.is_symlink():
            replaced = "a symlink"
            gitfile.unlink()
        elif gitfile.is_dir():
            replaced = "a directory"
            shutil.rmtree(gitfile)
        elif gitfile.exists():
            try:
                ok = gitfile.read_bytes() == expected.encode()
            except OSError:
                ok = False
            if ok:
                return None
            replaced = "a file pointing elsewhere" if gitfile.is_file() else "something not a file"
            gitfile.unlink()
        else:
            replaced = "nothing (it was deleted)"
        gitfile.write_text(expected)
        return replaced

    def remove_worktree(self, path: Path) -> None:
        """Delete a worktree of the harness and its metadata. Only paths under the
        harness's worktrees dir are touched, and the metadata dir comes from
        `worktree_meta`, never from the worktree's `.git`. Raises GitError for
        any other path, and when the checkout cannot be deleted (the agent made it
        undeletable): then its metadata stays too, and nothing claims it is gone."""
        path = Path(os.path.abspath(path))
        top = Path(os.path.realpath(self.root / "worktrees"))
        if top not in (Path(os.path.realpath(path.parent)) / path.name).parents:
            raise GitError(f"refusing to remove {path}: not under {top}")
        try:
            meta = self.worktree_meta(path)
        except GitError:
            meta = None
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            _rmtree_writable(path)
        if os.path.lexists(path):
            raise GitError(f"cannot remove {path}: something in it cannot be deleted "
                           "(an immutable or foreign-owned file?)")
        if meta is not None:
            shutil.rmtree(meta, ignore_errors=True)
        self._worktree_names.pop(path, None)

    def run_worktrees(self, run_id: str) -> list[tuple[Path, str | None]]:
        """Every worktree the harness made for a run, as (path, git's name for it or
        None): the checkouts in the run's worktrees folder, and git metadata whose
        `gitdir` points into that folder (also when the checkout is gone). A user's
        own worktree is never among them, whatever its name."""
        folder = Path(os.path.abspath(self.root / "worktrees" / run_id))
        found: dict[Path, str | None] = {}
        for path, name in self._harness_worktree_meta():
            if path.parent == folder:
                found[path] = name
        if folder.is_dir():
            for entry in folder.iterdir():
                found.setdefault(Path(os.path.abspath(entry)), None)
        return sorted(found.items())

    def harness_worktrees(self) -> dict[str, list[tuple[Path, str | None]]]:
        """`run_worktrees` of every run that has any, by run id: also runs whose record
        is gone. The harness's worktrees are detached and named `harness+RUN+LEAF`, so
        they are found by where the harness puts them, never by branch."""
        top = Path(os.path.abspath(self.root / "worktrees"))
        runs = {path.parent.name for path, _ in self._harness_worktree_meta() if path.parent.parent == top}
        if top.is_dir():
            runs |= {d.name for d in top.iterdir() if d.is_dir() and not d.is_symlink() and any(d.iterdir())}
        return {run: found for run in sorted(runs) if (found := self.run_worktrees(run))}

    def _harness_worktree_meta(self) -> Iterator[tuple[Path, str]]:
        """(checkout path, name) of git metadata dirs whose checkout lies under the
        harness's worktrees dir: those, and only those, the harness made."""
        top = Path(os.path.abspath(self.root / "worktrees"))
        for gitdir_file in (self.common / "worktrees").glob("*/gitdir"):
            try:
                target = Path(gitdir_file.read_text().strip())
            except OSError:
                continue
            if target.name == ".git" and top in target.parent.parents:
                yield target.parent, gitdir_file.parent.name

    def worktree_dirty(self, path: Path) -> bool:
        """Whether the worktree holds changes nobody committed (ignored files aside)."""
        try:
            wt = self.open_worktree(path)
        except (GitError, pygit2.GitError):
            return False
        return any(not (flags & FileStatus.IGNORED) for flags in wt.status().values())

    def forget_worktree(self, name: str) -> None:
        """Drop git's metadata of a harness worktree whose checkout is gone; metadata
        that is not the harness's (its checkout outside the harness's worktrees dir)
        is never touched."""
        for path, known in self._harness_worktree_meta():
            if known == name and not os.path.lexists(path):
                shutil.rmtree(self.common / "worktrees" / name, ignore_errors=True)
                self._worktree_names.pop(path, None)

    # --- commits ---------------------------------------------------------------------

    def commit_worktree(self, path: Path, base_commit: str, message: str) -> "WorktreeCommit":
        """Commit everything changed in the worktree (tracked, untracked, deleted;
        ignored files stay out) on top of `base_commit`, without moving any ref.

        The `.git` file is restored first and the worktree opened through its
        metadata dir, so what an agent did to `.git` can neither redirect the
        commit nor get into it. File names are committed byte for byte, also when
        they are not UTF-8 (`DiffStat.paths` shows such bytes as `\\xNN`).
        Left out, and named in `notes`: any `.git` entry below the top (a nested
        repository's files are committed, its `.git` is not), and entries that
        are neither files, symlinks nor directories (fifos, sockets, devices), and
        files over staging.MAX_FILE_BYTES.
        Raises GitError when the worktree is not the harness's."""
        path = Path(os.path.abspath(path))
        _check_checkout(path)
        notes: list[str] = []
        replaced = self.restore_gitfile(path)
        if replaced is not None:
            notes.append(f"the agent's .git was {replaced}; restored from the host")
        wt = self.open_worktree(path)
        base = wt[pygit2.Oid(hex=base_commit)].peel(pygit2.Commit)
        index = wt.index  # the metadata dir's index: the base tree as checked out
        left_out: list[bytes] = []
        for file, flags in sorted(wt.status().items()):
            if flags & FileStatus.IGNORED:
                continue
            stage_entry(wt, index, path, os.fsencode(file.rstrip("/")), left_out)
        tree_id = index.write_tree()
        if left_out:
            shown = ", ".join(show_path(p) for p in left_out[:5])
            more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
            notes.append(f"left out of the commit (a .git, a fifo, socket or device, or a file over "
                         f"{MAX_FILE_BYTES >> 20} MiB): {shown}{more}")
        if tree_id == base.tree_id:
            index.write()
            return WorktreeCommit(None, DiffStat(), notes)
        diff = wt.diff(base.tree, wt[tree_id])
        diff.find_similar()
        stats = diff.stats
        paths = sorted({show_path(f.raw_path) for d in diff.deltas for f in (d.old_file, d.new_file)})
        sig = pygit2.Signature(*AUTHOR)
        commit = wt.create_commit(None, sig, sig, message, tree_id, [base.id])
        index.write()
        wt.set_head(commit)  # the worktree's own HEAD (in its metadata dir): it reads clean
        return WorktreeCommit(str(commit), DiffStat(files_changed=stats.files_changed,
                                                    insertions=stats.insertions,
                                                    deletions=stats.deletions, paths=paths), notes)

    def merged_base(self, commits: list[str], message: str) -> str:
        """One commit that holds all of `commits`: the commit itself when there is
        one, else merge commits of them (no ref moves). Raises GitError on conflict."""
        from .gitmerge import GitMerger  # merged as git merges (the fold's own merge)

        repo = self.repo()
        merger = GitMerger(repo)
        sig = pygit2.Signature(*AUTHOR)
        acc = pygit2.Oid(hex=commits[0])
        for other in commits[1:]:
            theirs = pygit2.Oid(hex=other)
            index = merger.merge_commits(acc, theirs)
            if index.conflicts is not None:
                paths = sorted({(o or t or a).path for a, o, t in index.conflicts})
                raise GitError(f"dependencies conflict in {', '.join(paths)}")
            acc = repo.create_commit(None, sig, sig, message, index.write_tree(repo), [acc, theirs])
        return str(acc)


def _check_checkout(path: Path) -> None:
    """The checkout must still be the directory the harness made: an agent that put
    a symlink (or anything else) in its place would have the harness write and
    commit somewhere else. Raises GitError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise GitError(f"the worktree {path} is gone (the agent deleted it); nothing to commit") from None
    if stat.S_ISLNK(st.st_mode):
        raise GitError(f"the worktree {path} was replaced by a symlink to {os.readlink(path)}; "
                       "nothing committed, nothing followed")
    if not stat.S_ISDIR(st.st_mode) or os.path.realpath(path) != str(path):
        raise GitError(f"the worktree {path} is no longer the directory the harness made; nothing committed")


def _rmtree_writable(path: Path) -> None:
    """rmtree that makes a directory writable again when an agent took the write bit
    away (chmod -R a-w) and retries; what still cannot go is left for the caller."""
    def again(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target) or ".", 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass
    shutil.rmtree(path, onerror=again)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


def worktree_name(run_id: str, leaf: str) -> str:
    """git's name for the harness worktree at `worktrees/<run>/<leaf>`. `+` appears in
    no run or task id, so no two worktrees of any runs share a name."""
    return f"harness+{run_id}+{leaf}"


class WorktreeCommit(NamedTuple):
    """What `commit_worktree` made: the commit (None when nothing changed), its
    diff against the base, and notes on what was restored or left out."""

    commit: str | None
    diff: DiffStat
    notes: list[str]


_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
