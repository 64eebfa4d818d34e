"""The library calls behind `harness run`, `status`, `show` and `clean`."""

from __future__ import annotations

from pathlib import Path

from .config import DockerSandboxConfig
from .errors import SandboxUnavailable, UsageError
from .orchestrator import Orchestrator, Progress, _quiet
from .forecast import plan_scope_overlaps
from .plan import ResolvedPlan, check_run_id, new_run_id, resolve_plan
from .sandbox import get_sandbox
from .schema import RunRecord
from .store import RunStore, open_run
from .workspace import Workspace, resolve_commit


def prepare_run(plan_path: Path, repo: Path, *, run_id: str | None = None,
                sandbox: str | None = None, max_parallel: int | None = None,
                keep_sandboxes: bool = False) -> tuple[Workspace, RunStore, ResolvedPlan, RunRecord, list[str]]:
    """Validate everything a run needs. Raises UsageError (or SandboxUnavailable)
    and creates nothing. Returns the pieces and warnings to show."""
    plan = resolve_plan(plan_path, sandbox=sandbox, max_parallel=max_parallel,
                        keep_sandboxes=keep_sandboxes)
    return prepare_resolved(plan, repo, run_id=run_id)


def prepare_resolved(plan: ResolvedPlan, repo: Path, *, run_id: str | None = None
                     ) -> tuple[Workspace, RunStore, ResolvedPlan, RunRecord, list[str]]:
    """`prepare_run` for a plan already resolved (a bench builds its own)."""
    ws = Workspace(repo)
    base = resolve_commit(ws.repo(), plan.run.base)
    run_id = run_id or plan.run.id or new_run_id()
    check_run_id(run_id)
    store = RunStore(ws, run_id)
    if store.exists() or store.dir.exists():
        raise UsageError(f"run {run_id!r} exists already")
    if any(r.name.startswith(f"refs/heads/harness/{run_id}/") for r in ws.repo().references.objects):
        raise UsageError(f"run {run_id!r} exists already (branches harness/{run_id}/* are there)")
    warnings: list[str] = []
    seen: set[str] = set()
    image_id = None
    for task in plan.tasks.values():
        key = task.sandbox.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        sb = get_sandbox(task.sandbox)
        sb.check()
        if not sb.isolates:
            warnings.append(f"warning: the {sb.name} sandbox does not isolate agents "
                            "(no network, filesystem or resource limits)")
        image_id = image_id or getattr(sb, "image_id", None)  # set by check()
    record = RunRecord(
        run_id=run_id, repo=str(ws.common), plan_path=str(plan.path.resolve()) if plan.path else None,
        plan=plan.raw,
        base_ref=plan.run.base, base_commit=str(base.id), sandbox=plan.run.sandbox.type,
        image_id=image_id,
        max_parallel=plan.run.max_parallel, task_order=list(plan.tasks),
        scope_overlaps=plan_scope_overlaps(plan),
    )
    warnings = sorted(set(warnings))
    if record.scope_overlaps:
        pairs = [f"{o.a} & {o.b}" for o in record.scope_overlaps]
        warnings.append(f"warning: write scopes overlap for {len(pairs)} pair(s) of tasks that may run side by "
                        f"side: {', '.join(pairs[:6])}{' ...' if len(pairs) > 6 else ''}; "
                        f"`harness conflicts {run_id}` follows them as they work")
    return ws, store, plan, record, warnings


def run_plan(plan_path: Path, repo: Path, *, progress: Progress = _quiet, **options) -> RunRecord:
    """Run a plan end to end and return its record. Raises UsageError on bad input."""
    return execute(*prepare_run(plan_path, repo, **options), progress=progress)


def execute(ws: Workspace, store: RunStore, plan: ResolvedPlan, record: RunRecord, warnings: list[str],
            *, progress: Progress = _quiet) -> RunRecord:
    """Create the run's record and run its agents (everything was checked before)."""
    for w in warnings:
        progress(w)
    store.create(record)
    progress(f"run {record.run_id}: {len(plan.tasks)} tasks, at most {plan.run.max_parallel} at once, "
             f"sandbox {plan.run.sandbox.type}, base {record.base_commit[:10]}")
    return Orchestrator(ws, store, plan, record, progress).run()


def clean_run(repo: Path, run_id: str, *, force: bool = False) -> list[str]:
    """Remove a run's worktrees (and leftover sandboxes); branches stay.
    A worktree with changes nobody committed is kept unless `force`."""
    ws, store, record = open_run(repo, run_id)
    removed: list[str] = []
    dirty: list[str] = []
    for wt in record.worktrees:
        path = Path(wt)
        if not path.exists():
            continue
        if not force and ws.worktree_dirty(path):
            dirty.append(wt)
            continue
        ws.remove_worktree(path)
        removed.append(wt)
    if record.sandbox == "docker":
        try:
            removed += get_sandbox(DockerSandboxConfig()).cleanup(run_id)
        except SandboxUnavailable:
            pass  # no daemon, so no containers of this run are left running either
    if dirty:
        raise UsageError(f"{len(dirty)} worktree(s) hold uncommitted changes (first: {dirty[0]}); "
                         "use --force to remove them anyway")
    store.event("cleaned", removed=len(removed))
    return removed
