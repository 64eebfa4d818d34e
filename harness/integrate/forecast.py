"""Which agents will collide, before anything is merged.

Each task's current work (its branch, else its latest attempt ref, else the live
worktree of a running attempt) is diffed against the run's base; changed line
spans of the same base file are compared pairwise (overlapping or adjacent spans:
a likely conflict; same file, disjoint regions: "same-file"), and the overlapping
pairs are confirmed by an in-memory merge of the two heads. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Mapping

import pygit2

from ..records import ConflictForecast, ForecastPair, ForecastPath, ForecastTask, HunkRange, TaskStatus
from ..repo.run import Run
from ..repo.workspace import Workspace, attempt_ref, branch_ref
from ..repo.gitmerge import GitMerger
from .hunks import Hunk, spans_collide

_D = pygit2.enums.DiffOption
WORKDIR_FLAGS = _D.INCLUDE_UNTRACKED | _D.RECURSE_UNTRACKED_DIRS | _D.SHOW_UNTRACKED_CONTENT


@dataclass(frozen=True)
class FileChange:
    """How one task changes one base file."""

    path: str
    hunks: tuple[Hunk, ...]
    whole: bool = False
    """The change cannot be split in lines (a binary file): it collides with any
    other change of the file."""

    def ranges(self) -> list[HunkRange]:
        if self.whole:
            return []
        return [h.base_range() for h in self.hunks]


Changes = dict[str, FileChange]
"""Base path -> change, for one task."""


def diff_changes(diff: pygit2.Diff) -> Changes:
    """The per-file changes of a diff from the base (renames keyed by the source)."""
    diff.find_similar()
    out: Changes = {}
    for patch in diff:
        if patch is None:
            continue
        d = patch.delta
        path = d.new_file.path if d.status == pygit2.enums.DeltaStatus.ADDED else d.old_file.path
        hunks = tuple(Hunk(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks)
        if d.status == pygit2.enums.DeltaStatus.RENAMED and not hunks:
            hunks = (Hunk(0, 0, 0, 0),)  # a pure rename still claims the file
        out[path] = FileChange(path=path, hunks=hunks, whole=d.is_binary)
    return out


def commit_changes(repo: pygit2.Repository, base: str, head: str) -> Changes:
    base_tree = repo[base].peel(pygit2.Tree)
    return diff_changes(base_tree.diff_to_tree(repo[head].peel(pygit2.Tree), context_lines=0))


def worktree_changes(ws: Workspace, path: Path, base: str) -> Changes:
    """Uncommitted work of a live worktree (tracked and untracked), read-only;
    opened through its metadata dir, never through the agent's `.git`."""
    wt = ws.open_worktree(path)
    return diff_changes(wt.diff(base, None, flags=WORKDIR_FLAGS, context_lines=0))


def _collide(a: FileChange, b: FileChange) -> bool:
    return a.whole or b.whole or spans_collide(a.hunks, b.hunks)


def overlapping_pairs(changes: Mapping[str, Changes]) -> list[ForecastPair]:
    """Every pair of tasks changing a common base file: "overlap" when some
    file has overlapping or adjacent changed spans, else "same-file". `changes`
    maps task id to its changes; pairs come in the mapping's task order."""
    order = {t: i for i, t in enumerate(changes)}
    by_path: dict[str, list[str]] = {}
    for tid, files in changes.items():
        for path in files:
            by_path.setdefault(path, []).append(tid)
    found: dict[tuple[str, str], list[ForecastPath]] = {}
    for path in sorted(by_path):
        tids = sorted(by_path[path], key=order.__getitem__)
        for a, b in combinations(tids, 2):
            ca, cb = changes[a][path], changes[b][path]
            found.setdefault((a, b), []).append(ForecastPath(
                path=path, a_ranges=ca.ranges(), b_ranges=cb.ranges(), overlap=_collide(ca, cb)))
    pairs = [ForecastPair(a=a, b=b, paths=paths,
                          kind="overlap" if any(p.overlap for p in paths) else "same-file")
             for (a, b), paths in found.items()]
    return sorted(pairs, key=lambda p: (order[p.a], order[p.b]))


def confirm(repo: pygit2.Repository, pair: ForecastPair, heads: Mapping[str, str | None]) -> ForecastPair:
    """Settle an overlap pair with an in-memory merge of the two heads."""
    ha, hb = heads.get(pair.a), heads.get(pair.b)
    if pair.kind != "overlap" or not ha or not hb:
        return pair
    index = GitMerger(repo).merge_commits(ha, hb)
    if index.conflicts is None:
        return pair.model_copy(update={"merge": "clean"})
    paths = sorted({e.path for t in index.conflicts for e in t if e is not None})
    return pair.model_copy(update={"merge": "conflict", "conflict_paths": paths})


def _latest_attempt(ws: Workspace, run_id: str, task_id: str, attempts_dir: Path) -> tuple[str, str | Path] | None:
    """The newest work of a task with no result yet: the live worktree of its
    newest attempt, or the newest attempt ref."""
    repo = ws.repo()
    numbers = sorted((int(p.name) for p in attempts_dir.iterdir() if p.name.isdigit()), reverse=True) \
        if attempts_dir.is_dir() else []
    prefix = f"refs/harness/{run_id}/{task_id}/"
    refs = sorted((int(r[len(prefix):]) for r in repo.references if r.startswith(prefix)
                   and r[len(prefix):].isdigit()), reverse=True)
    if numbers and (not refs or numbers[0] > refs[0]):
        wt = ws.root / "worktrees" / run_id / f"{task_id}.{numbers[0]}"
        if (wt / ".git").exists():
            return "worktree", wt
    if refs:
        return "attempt", str(repo.references[attempt_ref(run_id, task_id, refs[0])].resolve().target)
    return None


def forecast_run(run: Run, *, merge: bool = True) -> ConflictForecast:
    """Forecast the collisions of a run's tasks from their current work. Writes nothing."""
    ws, store, record, run_id = run.ws, run.store, run.record, run.run_id
    git = ws.repo()
    base = record.base_commit
    tasks: list[ForecastTask] = []
    changes: dict[str, Changes] = {}
    heads: dict[str, str | None] = {}
    for tid in record.task_order or list(record.tasks):
        result = record.tasks.get(tid)
        status = result.status.value if result else "running"
        source, head, found = None, None, None
        if result is not None and result.status == TaskStatus.succeeded:
            head = ws.ref_target(branch_ref(run_id, tid)) or result.head_commit
            source = "branch"
            found = commit_changes(git, base, head) if head else None
        elif result is None:
            latest = _latest_attempt(ws, run_id, tid, store.dir / "tasks" / tid)
            if latest is not None and latest[0] == "worktree":
                source, found = "worktree", worktree_changes(ws, Path(latest[1]), base)
            elif latest is not None:
                source, head = "attempt", str(latest[1])
                found = commit_changes(git, base, head)
        if found is not None:
            changes[tid] = found
            heads[tid] = head
        tasks.append(ForecastTask(task_id=tid, status=status, source=source, head=head,
                                  paths=sorted(found or {})))
    pairs = overlapping_pairs(changes)
    if merge:
        pairs = [confirm(git, p, heads) for p in pairs]
    return ConflictForecast(run_id=run_id, base_commit=base, tasks=tasks, pairs=pairs,
                            scope_overlaps=record.scope_overlaps)
