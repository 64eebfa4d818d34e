"""Folds a run's agent branches into one integration branch: `harness integrate`.

`integrate_run` checks the run's branches, folds them with the pure `fold` (see
fold.py, re-exported here), moves `refs/heads/harness/<run>/integration`, writes a
note on its head and records the MergeReport in the run record. The fold is
deterministic, so re-integrating an unchanged run moves nothing.
"""

from __future__ import annotations

import json
from typing import Callable, Collection, Literal, Protocol

from ..errors import RepoError, UsageError
from ..progress import Progress, quiet
from ..records import ConflictRecord, FoldResult, MergeReport, RunRecord, TaskStatus
from ..repo.run import Run
from ..repo.store import RunStore
from ..repo.workspace import Workspace, branch_ref, resolve_commit
from .fold import Policy, Resolver, fold, merge_message, rebuild_tree

__all__ = ["FoldResult", "Resolver", "Retry", "RetryFactory", "check_integrate_options", "fold", "integrate_run",
           "integration_ref", "merge_message", "rebuild_tree", "succeeded_heads"]

Order = Literal["finish", "plan", "given"]


def integration_ref(run_id: str) -> str:
    return branch_ref(run_id, "integration")


# --- the command ---------------------------------------------------------------------


def succeeded_heads(ws: Workspace, record: RunRecord, order: Order,
                    tasks: Collection[str] | None = None) -> list[tuple[str, str]]:
    """The (task, head) pairs to fold, in order (only `tasks`, when given). Raises
    UsageError when there are none or `tasks` names a task that did not succeed,
    and RepoError when a branch was deleted or moved since the run."""
    done = [r for r in record.tasks.values() if r.status == TaskStatus.succeeded and r.head_commit]
    if tasks is not None:
        known = {r.task_id for r in done}
        missing = sorted(set(tasks) - known)
        if missing:
            raise UsageError(f"run {record.run_id!r} has no succeeded task {missing[0]!r} to integrate")
        done = [r for r in done if r.task_id in set(tasks)]
    if not done:
        raise UsageError(f"run {record.run_id!r} has no succeeded branches to integrate")
    rank = {t: i for i, t in enumerate(record.task_order)}
    if order == "given":
        given = {t: i for i, t in enumerate(tasks or ())}
        done.sort(key=lambda r: given[r.task_id])
    elif order == "plan":
        done.sort(key=lambda r: rank.get(r.task_id, len(rank)))
    else:
        done.sort(key=lambda r: (r.ended_at is None, r.ended_at.timestamp() if r.ended_at else 0,
                                 rank.get(r.task_id, len(rank))))
    repo = ws.repo()
    for r in done:
        ref = branch_ref(record.run_id, r.task_id)
        now = ws.ref_target(ref)
        if now is None:
            raise RepoError(f"branch {ref.removeprefix('refs/heads/')} was deleted since the run")
        if now != r.head_commit:
            raise RepoError(f"branch {ref.removeprefix('refs/heads/')} moved since the run "
                            f"(recorded {r.head_commit[:10]}, now {now[:10]})")
        if r.head_commit not in repo:
            raise RepoError(f"commit {r.head_commit[:10]} of task {r.task_id!r} is missing")
    return [(r.task_id, r.head_commit) for r in done]  # type: ignore[misc]


class Retry(Protocol):
    """Re-runs a conflicting task on the integration head (the `retry` policy).

    Integrate does not run agents: the caller hands it a factory for this (see
    `harness.run.retry.ConflictRetry`), so integrate never imports the scheduler."""

    def __call__(self, task_id: str, conflict: ConflictRecord, head: str) -> str | None:
        """A new attempt of `task_id` based on `head` and handed `conflict`; its new
        head when it succeeded, else None."""

    def record(self, record: RunRecord) -> RunRecord:
        """`record` with the retried tasks' results and worktrees merged in."""


RetryFactory = Callable[[Workspace, RunStore, RunRecord, Progress], Retry]


def integrate_run(run: Run, *, onto: str | None = None, order: Order = "finish",
                  policy: Policy = "skip", tasks: Collection[str] | None = None,
                  retry: RetryFactory | None = None, progress: Progress = quiet) -> MergeReport:
    """Fold the run's succeeded branches (only `tasks`, when given; in their order
    with `order="given"`) and move `harness/<run>/integration`.

    Checks everything first and raises UsageError/RepoError (exit 2) with no ref
    moved: unknown `onto`, no succeeded branches, a branch deleted or
    moved since the run. Policy `fail` stops at the first conflict and moves no ref
    (the report, status "failed", is still recorded). Returns the MergeReport, also
    saved in the run record with the unresolved conflicts. Policy `retry` needs
    `retry`, which re-runs a conflicting task (UsageError without it).
    """
    check_integrate_options(order=order, policy=policy, tasks=tasks, retry=retry)
    with run.store.writer("integrate"):
        return _integrate(run, onto=onto, order=order, policy=policy, tasks=tasks, retry=retry,
                          progress=progress)


def check_integrate_options(*, order: Order = "finish", policy: Policy = "skip",
                            tasks: Collection[str] | None = None, retry: RetryFactory | None = None) -> None:
    """Refuse options that are wrong whatever the run (checked before it is opened). Raises UsageError."""
    if order not in ("finish", "plan", "given"):
        raise UsageError(f"unknown order {order!r}; known: finish, plan, given")
    if order == "given" and not tasks:
        raise UsageError("order given: name the tasks to fold, in order")
    if policy not in ("skip", "retry", "fail"):
        raise UsageError(f"unknown conflict policy {policy!r}; known: skip, retry, fail")
    if policy == "retry" and retry is None:
        raise UsageError("on conflict retry: no way to re-run a task was given")


def _integrate(run: Run, *, onto: str | None, order: Order, policy: Policy, tasks: Collection[str] | None,
               retry: RetryFactory | None, progress: Progress) -> MergeReport:
    ws, store, record = run.ws, run.store, run.reload()
    run_id = record.run_id
    onto_ref = onto or record.base_commit
    onto_id = str(resolve_commit(ws.repo(), onto_ref).id)
    heads = succeeded_heads(ws, record, order, tasks)
    retrier = retry(ws, store, record, progress) if policy == "retry" and retry is not None else None
    strategies = {t: r.strategy for t, r in record.tasks.items()}
    store.event("integrate_started", onto=onto_id, order=order, policy=policy, branches=len(heads))
    progress(f"integrating {len(heads)} branch(es) of run {run_id} onto {onto_id[:10]} "
             f"({order} order, on conflict {policy})")
    result = fold(ws, onto_id, heads, run_id=run_id, strategies=strategies, policy=policy,
                  resolve=retrier, progress=progress)
    status = "failed" if result.stopped else ("conflicted" if result.unresolved else "clean")
    ref = integration_ref(run_id)
    report = MergeReport(run_id=run_id, onto=onto or record.base_ref, base_commit=onto_id, order=order,
                         policy=policy, branch=ref.removeprefix("refs/heads/"), head=result.head,
                         steps=result.steps, status=status, ref_moved=not result.stopped)
    if not result.stopped:
        ws.set_ref(ref, result.head, message=f"harness integrate {run_id}")
        ws.write_note(result.head, note_text(report))
    record = run.reload()
    if retrier is not None:
        run.record = record = retrier.record(record)
    kept = [c for c in record.conflicts if c.conflict_class != "textual"]
    fields = {"merge": report, "conflicts": kept + report.unresolved}
    if retrier is not None:
        fields.update(tasks=record.tasks, worktrees=record.worktrees)
    run.update(**fields)
    for s in report.steps:
        store.event("integrate_step", task=s.task_id, outcome=s.outcome, commit=s.merge_commit,
                    paths=[p.path for p in s.conflict.paths] if s.conflict else [])
    store.event("integrate_finished", status=status, head=result.head, moved=report.ref_moved,
                folded=len(report.folded), conflicted=len(report.unresolved))
    return report


def note_text(report: MergeReport) -> str:
    """The note on the integration head: a readable summary, then JSON."""
    counts: dict[str, int] = {}
    for s in report.steps:
        counts[s.outcome] = counts.get(s.outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    lines = [f"harness integrate {report.run_id}: {report.status} ({summary})",
             f"onto {report.onto} = {report.base_commit}, order {report.order}, on conflict {report.policy}"]
    for c in report.unresolved:
        lines.append(f"conflict {c.task_id}: " + ", ".join(f"{p.path} ({p.kind})" for p in c.paths))
    data = {"schema_version": report.schema_version, "run_id": report.run_id, "status": report.status,
            "onto": report.onto, "base_commit": report.base_commit, "order": report.order,
            "policy": report.policy, "head": report.head,
            "steps": [{"task": s.task_id, "outcome": s.outcome, "agent_head": s.agent_head,
                       "merge_commit": s.merge_commit, "strategy": s.strategy,
                       "conflicts": [{"path": p.path, "kind": p.kind} for p in s.conflict.paths]
                       if s.conflict else []} for s in report.steps]}
    return "\n".join(lines) + "\n\n" + json.dumps(data, indent=1) + "\n"
