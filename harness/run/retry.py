"""Retry on conflict: re-run a task whose branch conflicts with the integration.

Integrate folds branches but never runs agents; for its `retry` policy the caller
hands it `ConflictRetry` (a factory of the right shape), so integrate depends on
nothing of this stage.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..progress import Progress
from ..records import AgentResult, ConflictRecord, RunRecord, TaskStatus
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from .model import total_spend
from .plan import resolve_plan
from .scheduler import Orchestrator


class ConflictRetry:
    """The `retry` policy: a new attempt of the conflicting task, based on the
    integration head and handed the ConflictRecord. Its budget is the task's
    retries not yet used, and always at least one attempt."""

    def __init__(self, ws: Workspace, store: RunStore, record: RunRecord, progress: Progress) -> None:
        if not record.plan_path or not Path(record.plan_path).is_file():
            raise UsageError(f"run {record.run_id!r}: its plan {record.plan_path} is gone; "
                             "cannot retry (use --on-conflict skip)")
        self.plan = resolve_plan(Path(record.plan_path))
        self.orch = Orchestrator(ws, store, self.plan, record, progress)
        self.results: dict[str, AgentResult] = {}
        self.store = store

    def __call__(self, task_id: str, conflict: ConflictRecord, head: str) -> str | None:
        task = self.plan.tasks.get(task_id)
        prev = self.results.get(task_id) or self.orch.record.tasks[task_id]
        if task is None:
            return None
        used = max(0, len(prev.attempts) - 1)
        retries = max(0, task.retries - used)
        self.store.event("integrate_retry", task=task_id, base=head, retries=retries)
        seed = [(t, a) for t, r in {**self.orch.record.tasks, **self.results}.items() for a in r.attempts]
        with self.orch.model_session(seed):
            new = self.orch.run_task(task, base_commit=head, conflict=conflict,
                                     first_attempt=len(prev.attempts) + 1, retries=retries)
        ok = new.status == TaskStatus.succeeded
        merged = new.model_copy(update={
            "attempts": [*prev.attempts, *new.attempts],
            "retries": len(prev.attempts) + len(new.attempts) - 1,
            "started_at": prev.started_at or new.started_at,
            "status": TaskStatus.succeeded if ok else TaskStatus.conflicted,
            "exit_reason": new.exit_reason if ok else f"conflict; retry ended {new.status.value}"
                                                      + (f" ({new.exit_reason})" if new.exit_reason else ""),
            "branch": new.branch or prev.branch,
            "head_commit": new.head_commit if ok else prev.head_commit,
            "diff": new.diff if ok else prev.diff,
            "spend": total_spend([*prev.attempts, *new.attempts]),
        })
        self.results[task_id] = merged
        return new.head_commit if ok else None

    def record(self, record: RunRecord) -> RunRecord:
        tasks = {**record.tasks, **self.results}
        worktrees = list(dict.fromkeys([*record.worktrees, *self.orch.record.worktrees]))
        spend = total_spend(tasks.values()) if record.spend is not None or self.orch.plan.model else None
        return record.model_copy(update={"tasks": tasks, "worktrees": worktrees, "spend": spend})
