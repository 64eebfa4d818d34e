"""The pure fold: agent heads merged one by one onto a commit, in memory.

Each head is merged onto the integration so far with libgit2 (never a working
tree) and a clean merge becomes a merge commit whose parents are (integration so
far, agent head). Only objects are created; no ref moves. `integrate_run` (in
integrator.py) moves the integration branch; the gate calls `fold` directly to
rebuild an integration without some branches.

Merge commits are deterministic: author and committer are the harness and the time
is the later author time of the two parents, so identical inputs give identical
commit ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import pygit2

from ..errors import RepoError
from ..progress import Progress, quiet
from ..records import ConflictRecord, FoldResult, MergeStep
from ..repo.workspace import AUTHOR, Workspace
from .conflict_record import conflict_record, unrelated_record
from .dirrename import NOT_ATTEMPTED, MissedMove, missed_moves
from ..repo.gitmerge import GitMerger

Policy = Literal["skip", "retry", "fail"]
Resolver = Callable[[str, ConflictRecord, str], str | None]
"""(task id, its conflict, integration head) -> a new head of the task that is
based on the integration head, or None when no new head could be made."""

def merge_message(run_id: str, task_id: str, strategy: str | None) -> str:
    trailers = [f"Harness-Run: {run_id}", f"Harness-Task: {task_id}"]
    if strategy:
        trailers.append(f"Harness-Strategy: {strategy}")
    return f"harness: fold {task_id} into {run_id} integration\n\n" + "\n".join(trailers) + "\n"


@dataclass(frozen=True)
class _Pending:
    """What a conflicted step's record is made from: the merged index (None for
    unrelated histories), the merge base when there was one, and the moves into
    renamed directories git would have made."""

    index: pygit2.Index | None
    merge_base: pygit2.Oid | None
    missed: list[MissedMove]
    base_tree: pygit2.Tree | None
    """The tree merged on (the merge base's, or with files renamed alike moved)."""


class _Folder:
    """One fold in progress: the integration head, the steps, and the bookkeeping
    that keeps each step's cost following the head's new commits.

    Each head is walked once, down to the commits the integration already holds:
    `onto`'s history (hidden from the walk, so libgit2 stops where the two
    histories meet) and `mine`, the commits earlier steps folded in. The walk
    gives the head's new commits and the commits they stand on; when that is one
    commit it is the merge base (`merge_trees` on it), when several (a head built
    on other tasks' work, or a branch that merged its base) `merge_commits` finds
    the merge bases and builds a virtual base as git does. A head sharing no
    commit with the integration is refused as git refuses unrelated histories.
    The merged tree is written by rebuilding only the trees on the changed paths
    (`Index.write_tree` would re-read every tree).
    """

    def __init__(self, repo: pygit2.Repository, onto: str, run_id: str,
                 strategies: Mapping[str, str | None], progress: Progress) -> None:
        self.repo = repo
        self.run_id = run_id
        self.strategies = strategies
        self.progress = progress
        self.onto = repo[onto].peel(pygit2.Commit)
        self.head = self.onto
        self.merger = GitMerger(repo)
        self.steps: list[MergeStep] = []
        self.mine: set[pygit2.Oid] = set()
        self.touched: dict[str, list[str]] = {}
        """path -> the tasks whose fold changed it."""

    def _walk(self, head: pygit2.Oid) -> tuple[list[pygit2.Oid], list[pygit2.Oid]]:
        """(the commits the head's new commits stand on, head's commits the
        integration lacks), by one walk; ([], commits) for unrelated histories."""
        if head == self.onto.id or head in self.mine:
            return [head], []
        walker = self.repo.walk(head, pygit2.enums.SortMode.NONE)
        walker.hide(self.onto.id)
        new = [c for c in walker if c.id not in self.mine]
        ids = {c.id for c in new}
        stands_on = {p for c in new for p in c.parent_ids if p not in ids}
        return sorted(stands_on), [c.id for c in new]

    def merge(self, task_id: str, head_id: str) -> tuple[MergeStep, _Pending | None]:
        """Try one head onto the integration: a folded or empty step, or a
        conflicted one with what its record is made from."""
        repo, acc = self.repo, self.head
        theirs = repo[head_id].peel(pygit2.Commit)
        strategy = self.strategies.get(task_id)
        base = dict(task_id=task_id, agent_head=str(theirs.id), head_before=str(acc.id),
                    strategy=strategy)
        stands_on, new = self._walk(theirs.id)
        if not new:
            return MergeStep(outcome="empty", tree=str(acc.tree_id), **base), None
        if not stands_on:
            return MergeStep(outcome="conflicted", **base), _Pending(None, None, [], None)
        if len(stands_on) == 1:
            merge_base: pygit2.Oid | None = stands_on[0]
            base_tree = repo[stands_on[0]].peel(pygit2.Tree)
            index = self.merger.merge_trees(base_tree, acc.tree, theirs.tree)
            if index.conflicts is not None:
                alike = self.merger.alike_base(base_tree, acc.tree, theirs.tree)
                if alike is not None:
                    base_tree = alike
                    index = self.merger.merge_trees(base_tree, acc.tree, theirs.tree)
        else:
            merge_base = None
            index = self.merger.merge_commits(acc, theirs)
            base_tree = repo[repo.merge_base(acc.id, theirs.id)].peel(pygit2.Tree)
        missed = missed_moves(self.merger, base_tree, acc.tree, theirs.tree)
        if index.conflicts is not None or missed:
            return MergeStep(outcome="conflicted", **base), _Pending(index, merge_base, missed, base_tree)
        changes = {d.new_file.path if d.status != pygit2.enums.DeltaStatus.DELETED else d.old_file.path:
                   None if d.status == pygit2.enums.DeltaStatus.DELETED else (d.new_file.id, d.new_file.mode)
                   for d in index.diff_to_tree(acc.tree).deltas}  # old: acc, new: the merge
        tree_id = rebuild_tree(repo, acc.tree, changes)
        when = max(acc.author.time, theirs.author.time)
        sig = pygit2.Signature(*AUTHOR, time=when, offset=0)
        commit = repo.create_commit(None, sig, sig, merge_message(self.run_id, task_id, strategy),
                                    tree_id, [acc.id, theirs.id])
        self.head = repo[commit]
        self.mine.add(commit)
        self.mine.update(new)
        for path in changes:
            self.touched.setdefault(path, []).append(task_id)
        return MergeStep(outcome="folded", merge_commit=str(commit), tree=str(tree_id), **base), None

    def conflict(self, step: MergeStep, pending: _Pending) -> ConflictRecord:
        if pending.index is None:
            return unrelated_record(run_id=self.run_id, task_id=step.task_id, ours=step.head_before,
                                    theirs=step.agent_head)
        record = conflict_record(self.repo, pending.index, run_id=self.run_id, task_id=step.task_id,
                                 ours=pygit2.Oid(hex=step.head_before),
                                 theirs=pygit2.Oid(hex=step.agent_head), base=pending.merge_base,
                                 touched=self.touched, merger=self.merger, base_tree=pending.base_tree)
        if not pending.missed:
            return record
        known = {p.path for p in record.paths}
        paths = record.paths + [m.conflict() for m in pending.missed if m.new_path not in known]
        return record.model_copy(update={
            "paths": paths,
            "not_attempted": [f"{NOT_ATTEMPTED}: {m.path} -> {m.new_path}" for m in pending.missed],
            "detail": f"{len(paths)} conflicting path(s): " + ", ".join(p.path for p in paths[:10])})

    def add(self, step: MergeStep, n: int, total: int) -> None:
        self.steps.append(step)
        what = {"folded": f"folded as {(step.merge_commit or '')[:10]}",
                "empty": "empty (no commit of its own)",
                "conflicted": ("conflict in " + ", ".join(p.path for p in step.conflict.paths[:3])
                               if step.conflict.paths else step.conflict.detail)
                if step.conflict else "conflicted",
                "retried": "conflict, retrying on the integration head",
                "skipped": "skipped"}.get(step.outcome, step.outcome)
        self.progress(f"[{n}/{total}] {step.task_id}: {what}" + (f" ({step.detail})" if step.detail else ""))


def rebuild_tree(repo: pygit2.Repository, tree: pygit2.Tree | None,
                 changes: Mapping[str, tuple[pygit2.Oid, int] | None]) -> pygit2.Oid:
    """`tree` with `changes` (path -> (blob id, mode), or None to delete) applied,
    writing only the trees on the changed paths. An emptied subtree disappears."""
    return _rebuild(repo, tree, changes) or repo.TreeBuilder().write()


def _rebuild(repo: pygit2.Repository, tree: pygit2.Tree | None,
             changes: Mapping[str, tuple[pygit2.Oid, int] | None]) -> pygit2.Oid | None:
    here: dict[str, tuple[pygit2.Oid, int] | None] = {}
    below: dict[str, dict[str, tuple[pygit2.Oid, int] | None]] = {}
    for path, value in changes.items():
        name, sep, rest = path.partition("/")
        if sep:
            below.setdefault(name, {})[rest] = value
        else:
            here[name] = value
    tb = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    # deletions first and insertions last, so a file that becomes a folder (or
    # the other way round) ends up as what the merge says
    for name, value in here.items():
        if value is None and tb.get(name) is not None:
            tb.remove(name)
    for name, sub_changes in below.items():
        old = tb.get(name)
        sub = repo[old.id] if old is not None and old.filemode == pygit2.enums.FileMode.TREE else None
        new = _rebuild(repo, sub, sub_changes)
        if new is None:
            if old is not None:
                tb.remove(name)
        else:
            tb.insert(name, new, pygit2.enums.FileMode.TREE)
    for name, value in here.items():
        if value is not None:
            tb.insert(name, value[0], value[1])
    return tb.write() if len(tb) else None


def fold(repo: pygit2.Repository | Workspace, onto: str, heads: Sequence[tuple[str, str]], *,
         run_id: str = "", strategies: Mapping[str, str | None] | None = None,
         policy: Policy = "skip", resolve: Resolver | None = None,
         progress: Progress = quiet) -> FoldResult:
    """Fold `heads` ((task id, commit) pairs, in order) onto the commit `onto`.

    Creates trees and merge commits only; no ref moves. On a conflict, `skip`
    records it and goes on; `fail` stops (the later heads become "skipped" steps);
    `retry` calls `resolve(task, conflict, integration head)` for a new head and
    folds that instead (a "retried" step, then "folded" or "conflicted"). Without
    a resolver, `retry` behaves as `skip`. Raises RepoError for an unknown commit.
    """
    repo = repo.repo() if isinstance(repo, Workspace) else repo
    try:
        folder = _Folder(repo, onto, run_id, strategies or {}, progress)
        for tid, head in heads:
            repo[head].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as exc:
        raise RepoError(f"cannot fold: unknown commit ({exc})") from None
    total = len(heads)
    stopped = False
    for n, (tid, head) in enumerate(heads, 1):
        if stopped:
            folder.add(MergeStep(task_id=tid, outcome="skipped", agent_head=head,
                                 head_before=str(folder.head.id), strategy=folder.strategies.get(tid),
                                 detail="stopped at an earlier conflict"), n, total)
            continue
        step, pending = folder.merge(tid, head)
        if step.outcome != "conflicted":
            folder.add(step, n, total)
            continue
        conflict = folder.conflict(step, pending)
        if policy == "retry" and resolve is not None:
            folder.add(step.model_copy(update={"outcome": "retried", "conflict": conflict}), n, total)
            new_head = resolve(tid, conflict, str(folder.head.id))
            if new_head is not None:
                step, pending = folder.merge(tid, new_head)
                if step.outcome != "conflicted":
                    folder.add(step, n, total)
                    continue
                conflict = folder.conflict(step, pending)
                step = step.model_copy(update={"detail": "still conflicts after the retry"})
            else:
                step = step.model_copy(update={"detail": "the retry did not succeed"})
        folder.add(step.model_copy(update={"outcome": "conflicted", "conflict": conflict}), n, total)
        stopped = policy == "fail"
    return FoldResult(onto=str(folder.onto.id), head=str(folder.head.id),
                      tree=str(folder.head.tree_id), steps=folder.steps, stopped=stopped)


