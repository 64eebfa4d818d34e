"""A tripwire on what the user owns in their repository.

A run snapshots the user's HEAD (where it points and the commit), the bytes of
their index, every ref outside the harness's namespaces and the repository's
config when it starts, and checks them again after every attempt's commit. The
harness never writes any of these during a run, so a difference means something
got past the worktree isolation (or the user worked in their repo meanwhile):
the attempt is failed loudly with what changed, instead of silently.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from .workspace import BRANCH_PREFIX, HIDDEN_PREFIX, NOTES_REF, Workspace


@dataclass(frozen=True)
class RepoState:
    """What the guard compares; hashes stand in for file contents."""

    head: str | None                 # the HEAD file's text: "ref: refs/heads/x" or an id
    head_commit: str | None
    index: str | None                # sha256 of the index file, None when there is none
    config: dict[str, str | None]    # config file name -> sha256
    refs: dict[str, str] = field(default_factory=dict)  # name -> target (id or symbolic)


def _hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _is_harness_ref(name: str) -> bool:
    return name.startswith((BRANCH_PREFIX, HIDDEN_PREFIX)) or name == NOTES_REF


def read_state(ws: Workspace) -> RepoState:
    """The user's side of the repository as it is now."""
    repo = ws.repo()
    try:
        head_text = (ws.git_dir / "HEAD").read_text().strip()
    except FileNotFoundError:
        head_text = None
    try:
        head_commit = str(repo.head.target)
    except (pygit2.GitError, KeyError):  # unborn or broken: the text above still tells
        head_commit = None
    refs: dict[str, str] = {}
    for ref in repo.references.objects:
        if not _is_harness_ref(ref.name):
            refs[ref.name] = str(ref.target)
    config = {name: _hash(ws.common / name) for name in ("config",)}
    if ws.git_dir.resolve() != ws.common:
        config["config.worktree"] = _hash(ws.git_dir / "config.worktree")
    return RepoState(head=head_text, head_commit=head_commit, index=_hash(ws.git_dir / "index"),
                     config=config, refs=refs)


def differences(before: RepoState, after: RepoState) -> list[str]:
    """What changed from `before` to `after`, one short phrase each."""
    out: list[str] = []
    if before.head != after.head:
        out.append(f"HEAD moved from {before.head!r} to {after.head!r}")
    elif before.head_commit != after.head_commit:
        out.append(f"HEAD's commit changed from {before.head_commit} to {after.head_commit}")
    if before.index != after.index:
        out.append("the index was rewritten" if after.index else "the index was deleted")
    for name in sorted(set(before.config) | set(after.config)):
        if before.config.get(name) != after.config.get(name):
            out.append(f"the repository's {name} file changed")
    for name in sorted(set(before.refs) | set(after.refs)):
        old, new = before.refs.get(name), after.refs.get(name)
        if old == new:
            continue
        if old is None:
            out.append(f"ref {name} was created at {new}")
        elif new is None:
            out.append(f"ref {name} was deleted (was {old})")
        else:
            out.append(f"ref {name} moved from {old} to {new}")
    return out


class RepoGuard:
    """The snapshot of one run and its checks. Thread-safe."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._lock = threading.Lock()
        self.baseline = read_state(ws)

    def check(self) -> list[str]:
        """What changed since the snapshot (empty when nothing did). A change is
        reported once: the state seen becomes the new baseline, so later attempts
        are judged on what they themselves changed."""
        with self._lock:
            now = read_state(self.ws)
            changed = differences(self.baseline, now)
            self.baseline = now
            return changed
