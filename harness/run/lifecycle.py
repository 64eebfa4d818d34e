"""The library calls behind `harness run`, `status`, `show` and `clean`."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import Plan
from ..errors import GitError, PlanError, RunBusy, SandboxUnavailable, UsageError
from ..ids import check_run_id
from ..progress import Progress, quiet
from ..records import AgentResult, Attempt, RunRecord, TaskStatus, utcnow
from ..repo.run import Run, save_plan
from ..repo.store import RunStore
from ..repo.workspace import Workspace, attempt_ref, resolve_commit
from ..sandbox import NAMES, default_config, get_sandbox
from .model import spend_from_trace
from .plan import ResolvedPlan, new_run_id, resolve, resolve_plan
from .scheduler import Orchestrator, attempt_message
from .scopes import plan_scope_overlaps


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
    if run_id is not None:
        check_run_id(run_id)  # an empty --run-id is refused, not replaced
    run_id = run_id if run_id is not None else plan.run.id or new_run_id()
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


def run_plan(plan_path: Path, repo: Path, *, progress: Progress = quiet, **options) -> RunRecord:
    """Run a plan end to end and return its record. Raises UsageError on bad input."""
    return execute(*prepare_run(plan_path, repo, **options), progress=progress)


def execute(ws: Workspace, store: RunStore, plan: ResolvedPlan, record: RunRecord, warnings: list[str],
            *, progress: Progress = quiet, orchestrator: Callable[..., Orchestrator] = Orchestrator) -> RunRecord:
    """Create the run's record and run its agents (everything was checked before).
    The run holds its writer lock throughout; SIGINT and SIGTERM cancel it (see
    `Orchestrator.cancel`) and the record ends `cancelled`. `orchestrator` makes the
    run's Orchestrator from (ws, store, plan, record, progress): a replay's drives
    its attempts its own way."""
    for w in warnings:
        progress(w)
    store.reserve()
    with store.writer("run"):  # before the record exists, so nobody sees it without a live writer
        store.create(record)
        save_plan(store, plan)
        progress(f"run {record.run_id}: {len(plan.tasks)} tasks, at most {plan.run.max_parallel} at once, "
                 f"sandbox {plan.run.sandbox.type}, base {record.base_commit[:10]}")
        orch = orchestrator(ws, store, plan, record, progress)
        with _signals_cancel(orch, progress):
            return orch.run()


def resume_run(run: Run, *, progress: Progress = quiet) -> RunRecord:
    """Finish a run that was interrupted (its process killed) or cancelled, or whose
    tasks crashed (a lost Docker daemon, say): stop what it left running (containers
    by label, processes by mark), keep its finished tasks, commit the work of
    interrupted attempts to their refs, and run the rest with the plan as it was
    recorded when the run started. Raises UsageError when there is nothing to
    resume or the run is a replay, RunBusy when the run is live."""
    ws, store, run_id = run.ws, run.store, run.run_id
    _check_resumable(run.record)
    source = next((ev["payload"].get("of") for ev in store.events() if ev["kind"] == "replay"), None)
    if source is not None:  # resumed as a run, it would call the upstream instead of its recording
        raise UsageError(f"run {run_id!r} is a replay of run {source!r}; it cannot be resumed: "
                         f"`harness replay {source}` replays it again")
    with store.writer("resume"):
        reaped = _reap(store, run_id)  # before anything can refuse: the dead run's agents go
        if reaped:
            progress(f"resume {run_id}: stopped {len(reaped)} sandbox(es) the run left running")
        record = run.reload()
        _check_resumable(record)
        plan = recorded_plan(run)
        if plan.model is not None:
            try:
                plan.model.keys(dict(os.environ))  # the gateway injects them: say so before anything runs
            except PlanError as exc:
                raise PlanError(f"run {run_id!r}: {exc}") from None
        for cfg in {task.sandbox.model_dump_json(): task.sandbox for task in plan.tasks.values()}.values():
            get_sandbox(cfg).check()
        orch = Orchestrator(ws, store, plan, record.model_copy(update={"status": "running"}), progress)
        done, prior = _salvage(orch, store, record, plan, progress)
        store.event("run_resumed", kept=sorted(done), rerun=sorted(t for t in plan.tasks if t not in done))
        progress(f"resume {run_id}: {len(done)} task(s) kept, {len(plan.tasks) - len(done)} to run")
        with _signals_cancel(orch, progress):
            return orch.run(done=done, prior=prior)


def _check_resumable(record: RunRecord) -> None:
    """A finished run is resumed only for tasks it did not finish, or that crashed
    or were cancelled. Raises UsageError."""
    if record.status == "finished" and not any(
            t not in record.tasks or record.tasks[t].status in (TaskStatus.cancelled, TaskStatus.crashed)
            for t in record.task_order):
        raise UsageError(f"run {record.run_id!r} finished already; nothing to resume")


def recorded_plan(run: Run) -> ResolvedPlan:
    """The run's plan as it was resolved when it started (see `repo.run.save_plan`);
    for a run older than that, resolved again from the plan in its record."""
    if run.plan is not None:
        return run.plan
    record = run.record
    try:
        plan = Plan.model_validate(record.plan)
    except ValidationError as exc:
        raise UsageError(f"run {record.run_id!r}: its recorded plan is invalid: {exc.errors()[0]['msg']}") from None
    path = Path(record.plan_path) if record.plan_path else None
    override = record.sandbox if record.sandbox != plan.run.sandbox.type else None
    return resolve(plan, path, sandbox=override, max_parallel=record.max_parallel)


def _reap(store: RunStore, run_id: str) -> list[str]:
    """Stop every sandbox a dead process of the run left, found by label or mark."""
    reaped: list[str] = []
    for name in NAMES:
        try:
            sb = get_sandbox(default_config(name))
            reaped += sb.stop(run_id, store.dir)
            sb.cleanup(run_id, store.dir)
        except SandboxUnavailable:
            pass  # no daemon: none of its containers run either
    return reaped


def _salvage(orch: Orchestrator, store: RunStore, record: RunRecord, plan: ResolvedPlan,
             progress: Progress) -> tuple[dict[str, AgentResult], dict[str, list[Attempt]]]:
    """Split the run's tasks into those kept as they ended and those to run again
    (not finished, cancelled, crashed, and what failed only because of those), and
    give each of the latter its earlier attempts, committing the work of any attempt
    that never finished to its attempt ref."""
    rerun = {t for t in plan.tasks if t not in record.tasks
             or record.tasks[t].status in (TaskStatus.cancelled, TaskStatus.crashed)}
    grew = True
    while grew:
        grew = False
        for t, r in record.tasks.items():
            if t not in rerun and r.status == TaskStatus.dependency_failed and t in plan.tasks \
                    and plan.ancestors(t) & rerun:
                rerun.add(t)
                grew = True
    done = {t: r for t, r in record.tasks.items() if t not in rerun and t in plan.tasks}
    started: dict[tuple[str, int], dict] = {}
    finished: dict[tuple[str, int], Attempt] = {}
    for ev in store.events():
        key = (ev.get("task"), ev.get("attempt"))
        if ev["kind"] == "attempt_started":
            started[key] = ev["payload"]
        elif ev["kind"] == "attempt_finished" and "record" in ev["payload"]:
            finished[key] = Attempt.model_validate(ev["payload"]["record"])
    prior: dict[str, list[Attempt]] = {}
    for (tid, n), payload in sorted(started.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if tid not in rerun:
            continue
        attempt = finished.get((tid, n)) or _salvage_attempt(orch, store, plan, tid, n, payload)
        if attempt.status == TaskStatus.cancelled and attempt.commit and (tid, n) not in finished:
            progress(f"resume: {tid} attempt {n} was interrupted; its work is kept on {attempt.ref}")
        prior.setdefault(tid, []).append(attempt)
    for tid in rerun:
        if tid in record.tasks and tid not in prior:
            prior[tid] = list(record.tasks[tid].attempts)
    return done, prior


def _salvage_attempt(orch: Orchestrator, store: RunStore, plan: ResolvedPlan, tid: str, n: int,
                     payload: dict) -> Attempt:
    """An attempt the dead process never finished: commit what its worktree holds
    (or take the ref it had already written), record it `cancelled`."""
    base = payload.get("base") or orch.record.base_commit
    wt = Path(payload.get("worktree") or orch.worktree_path(tid, n))
    ref = attempt_ref(store.run_id, tid, n)
    commit, diff = orch.ws.ref_target(ref), None
    why = "interrupted: the harness stopped while it ran"
    if wt.exists() and tid in plan.tasks:
        try:
            done, _ = orch.commit_attempt(tid, n, base, wt, attempt_message(store.run_id, plan.tasks[tid], n))
            commit, diff = done.commit or orch.ws.ref_target(ref), done.diff if done.commit else None
        except Exception as exc:  # its worktree is beyond repair: keep it for a person to look at
            why += f"; its worktree {wt} could not be committed ({type(exc).__name__}: {exc})"
    if commit:
        why += f"; its work is kept on {ref}"
    now = utcnow()
    attempt = Attempt(number=n, status=TaskStatus.cancelled, reason=why, started_at=now, ended_at=now,
                      duration_s=0.0, base_commit=base, commit=commit, ref=ref if commit else None,
                      log_path=str(store.attempt_dir(tid, n) / "output.log"), diff=diff,
                      sandbox=plan.tasks[tid].sandbox.type if tid in plan.tasks else "local",
                      spend=spend_from_trace(store.attempt_dir(tid, n)) if plan.model is not None else None)
    store.event("attempt_finished", task=tid, attempt=n, status=attempt.status.value, reason=why,
                commit=commit, record=attempt)
    return attempt


@contextmanager
def _signals_cancel(orch: Orchestrator, progress: Progress) -> Iterator[None]:
    """While the block runs: the first SIGINT or SIGTERM cancels the run (sandboxes
    stopped, work kept); a second one exits at once (`harness resume` finishes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if orch.cancelled:
            os.write(2, f"harness: {name} again: exiting now; `harness resume {orch.record.run_id}` "
                        "finishes the run\n".encode())
            os._exit(128 + signum)
        progress(f"harness: {name}: stopping every agent of run {orch.record.run_id} and keeping their work "
                 f"(again to exit at once)")
        orch.cancel(name)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def clean_run(repo: Path, run_id: str, *, force: bool = False) -> list[str]:
    """Remove a run's worktrees and leftover sandboxes; branches stay. Finds them by
    name and label, not only through the record (a killed run never wrote all of
    them down). A worktree with changes nobody committed is kept unless `force`.
    Raises RunBusy while the run is live."""
    check_run_id(run_id)
    ws = Workspace(repo)
    store = RunStore(ws, run_id)
    if not store.dir.is_dir():
        raise UsageError(f"unknown run {run_id!r}")
    with store.writer("clean"):
        removed, dirty, stuck = _clean(ws, store, force=force)
    if stuck:
        raise GitError(f"{len(stuck)} worktree(s) could not be removed; first: {stuck[0]}")
    if dirty:
        raise UsageError(f"{len(dirty)} worktree(s) hold uncommitted changes (first: {dirty[0]}); "
                         "use --force to remove them anyway")
    return removed


class StaleCleaned(BaseModel):
    """What `clean_stale` did."""

    model_config = ConfigDict(frozen=True)

    removed: list[str] = []
    """Worktree paths, container names and pids removed or stopped."""
    kept: list[str] = []
    """Worktrees kept because they hold uncommitted changes: without --force, or of an
    interrupted run (`harness resume` keeps that work)."""
    busy: list[str] = []
    """Runs that turned out to be running when their lock was tried: left alone."""
    runs: list[str] = []
    """This repository's runs whose leftovers were cleaned."""
    looked_at_repo: bool = True
    """False when there was no repository: only orphaned containers were looked for."""
    docker: str | None = None
    """Why containers were not looked at, or None."""


def clean_stale(repo: Path | None, *, force: bool = False) -> StaleCleaned:
    """Remove what runs that are not running left behind: this repository's worktrees
    (those holding uncommitted changes only with `force`), containers and local
    processes of every run of it, recorded or not, and labelled containers whose run
    folder is gone wherever it was. The uncommitted work of an interrupted run stays
    even with `force`: `harness resume` commits it (`clean_run` drops it). A run's things are removed while holding its
    writer lock, so a run that is running (or starts meanwhile) is never touched.
    Branches and refs stay. With `repo` None, only orphaned containers. Raises
    GitError when a worktree cannot be deleted, SandboxError when the daemon refuses."""
    from ..sandbox.doctor import find_leftovers, remove_orphans

    ws = Workspace(repo) if repo is not None else None
    found = find_leftovers(ws)
    removed: list[str] = []
    kept: list[str] = []
    stuck: list[str] = []
    busy: list[str] = []
    runs = sorted({x.run_id for kind in ("worktrees", "containers", "processes")
                   for x in found.stale(kind) if x.owner == "this" and x.run_id})
    interrupted = {w.run_id for w in found.worktrees if w.interrupted}
    for run_id in runs:
        assert ws is not None
        store = RunStore(ws, run_id)
        # `resume` commits what an interrupted run's worktrees hold: a sweep never drops it.
        keep_work = not force or run_id in interrupted
        try:
            if store.dir.is_dir():
                with store.writer("clean"):
                    done = _clean(ws, store, force=not keep_work)
            else:
                done = _clean(ws, store, force=not keep_work)  # its folder is gone: nobody can run it
        except RunBusy:
            busy.append(run_id)
            continue
        removed += done[0]
        kept += done[1]
        stuck += done[2]
    removed += remove_orphans(found)
    if stuck:
        raise GitError(f"{len(stuck)} worktree(s) could not be removed; first: {stuck[0]}")
    return StaleCleaned(removed=removed, kept=kept, busy=busy, runs=[r for r in runs if r not in busy],
                        looked_at_repo=ws is not None, docker=found.docker)


def _clean(ws: Workspace, store: RunStore, *, force: bool) -> tuple[list[str], list[str], list[str]]:
    """Remove the run's worktrees (found where they are: a killed run never wrote all
    of them down, and an unreadable record hides none) and stop and remove its
    sandboxes (by label and mark). Returns (removed, kept dirty, stuck). The caller
    holds the run's writer lock, or the run's folder is gone."""
    run_id = store.run_id
    removed: list[str] = []
    dirty: list[str] = []
    stuck: list[str] = []
    for path, name in ws.run_worktrees(run_id):
        if not os.path.lexists(path):
            if name:
                ws.forget_worktree(name)
                removed.append(str(path))
            continue
        if not force and ws.worktree_dirty(path):
            dirty.append(str(path))
            continue
        try:
            ws.remove_worktree(path)
            removed.append(str(path))
        except GitError as exc:
            stuck.append(str(exc))
    for name in NAMES:
        try:
            sb = get_sandbox(default_config(name))
            removed += sb.stop(run_id, store.dir)
            removed += sb.cleanup(run_id, store.dir)
        except SandboxUnavailable:
            pass  # no daemon, so no containers of this run are left running either
    if store.dir.is_dir():
        store.event("cleaned", removed=len(removed), kept=dirty, stuck=stuck)
    return removed, dirty, stuck
