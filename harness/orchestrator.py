"""Runs a task DAG: at most `max_parallel` agents at once, each attempt in its own
worktree and sandbox, retries with backoff, failure isolation, a record for all."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable

from .agents import get_agent
from .errors import GitError, HarnessError
from .plan import ResolvedPlan, ResolvedTask
from .protocols import Sandbox
from .sandbox import get_sandbox
from .schema import (AgentResult, Attempt, Budget, ConflictRecord, FailureInfo, RunRecord,
                     SandboxResult, TaskSpec, TaskStatus, utcnow)
from .store import RunStore
from .workspace import Workspace, attempt_ref, branch_ref, scope_matcher, worktree_name

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Orchestrator:
    """Drives the agents of one run. Thread-safe; one instance per run."""

    def __init__(self, ws: Workspace, store: RunStore, plan: ResolvedPlan, record: RunRecord,
                 progress: Progress = _quiet) -> None:
        self.ws = ws
        self.store = store
        self.plan = plan
        self.record = record
        self.progress = progress
        self._sandboxes: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    # --- the DAG ---------------------------------------------------------------------

    def run(self) -> RunRecord:
        """Run every task; return the finished record (also saved)."""
        tasks = self.plan.tasks
        dependents = self.plan.dependents()
        waiting = {t: len(tasks[t].depends_on) for t in tasks}
        results: dict[str, AgentResult] = {}
        done_count = 0
        self.store.event("run_started", tasks=len(tasks), max_parallel=self.plan.run.max_parallel)
        with ThreadPoolExecutor(max_workers=self.plan.run.max_parallel,
                                thread_name_prefix="agent") as pool:
            running: dict[Future, str] = {}

            def submit(tid: str) -> None:
                deps = [results[d].head_commit for d in tasks[tid].depends_on]
                running[pool.submit(self._run_task_safe, tasks[tid], deps)] = tid

            for tid in sorted(tasks, key=lambda t: tasks[t].order):
                if waiting[tid] == 0:
                    submit(tid)
            try:
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        tid = running.pop(fut)
                        result = fut.result()
                        results[tid] = result
                        done_count += 1
                        self._record_result(result)
                        self.progress(_line(done_count, len(tasks), result))
                        for child in self._settle(tid, result, dependents, waiting, results):
                            done_count += 1
                            self.progress(_line(done_count, len(tasks), results[child]))
                        for child in sorted(dependents[tid], key=lambda t: tasks[t].order):
                            if waiting[child] == 0 and child not in results:
                                submit(child)
            except KeyboardInterrupt:
                self._cancel.set()
                for fut in running:
                    fut.cancel()
                raise
        self.record = self.record.model_copy(update={"status": "finished", "ended_at": utcnow()})
        self.store.save(self.record)
        self.store.event("run_finished", ok=self.record.ok)
        return self.record

    def _settle(self, tid: str, result: AgentResult, dependents: dict[str, list[str]],
                waiting: dict[str, int], results: dict[str, AgentResult]) -> list[str]:
        """Count a finished task against its dependents; a failed one fails them all
        (transitively) as dependency_failed. Returns the tasks failed that way."""
        failed: list[str] = []
        for child in dependents[tid]:
            if child in results:
                continue
            waiting[child] -= 1
            if result.status != TaskStatus.succeeded:
                why = f"dependency {tid!r} ended {result.status.value}"
                results[child] = AgentResult(task_id=child, status=TaskStatus.dependency_failed,
                                             exit_reason=why, strategy=self.plan.tasks[child].strategy,
                                             failure=FailureInfo(kind="dependency", message=why))
                self._record_result(results[child])
                failed.append(child)
                failed += self._settle(child, results[child], dependents, waiting, results)
        return failed

    def _record_result(self, result: AgentResult) -> None:
        with self._lock:
            tasks = dict(self.record.tasks)
            tasks[result.task_id] = result
            self.record = self.record.model_copy(update={"tasks": tasks})
            self.store.save(self.record)
        self.store.event("task_finished", task=result.task_id, status=result.status.value,
                         reason=result.exit_reason, head=result.head_commit)

    # --- one task --------------------------------------------------------------------

    def _run_task_safe(self, task: ResolvedTask, dep_heads: list[str | None]) -> AgentResult:
        try:
            return self.run_task(task, dep_heads=[h for h in dep_heads if h])
        except HarnessError as exc:
            # The harness broke for this task only (say, a git write failed): the
            # others go on, and the reason is on the record.
            return AgentResult(task_id=task.id, status=TaskStatus.crashed, exit_reason=str(exc),
                               strategy=task.strategy,
                               failure=FailureInfo(kind=type(exc).__name__, message=str(exc)))

    def run_task(self, task: ResolvedTask, *, dep_heads: list[str] | None = None,
                 base_commit: str | None = None, conflict: ConflictRecord | None = None,
                 first_attempt: int = 1, retries: int | None = None) -> AgentResult:
        """Run a task's attempts until one succeeds or its retries are spent."""
        started = utcnow()
        if base_commit is None:
            if dep_heads:
                try:
                    base_commit = self.ws.merged_base(
                        dep_heads, f"harness: base of {task.id} (merge of its dependencies)")
                except GitError as exc:
                    return AgentResult(task_id=task.id, status=TaskStatus.dependency_failed,
                                       exit_reason=str(exc), strategy=task.strategy,
                                       failure=FailureInfo(kind="dependency", message=str(exc)))
            else:
                base_commit = self.record.base_commit
        retries = task.retries if retries is None else retries
        attempts: list[Attempt] = []
        for k in range(retries + 1):
            if self._cancel.is_set():
                break
            if k:
                time.sleep(task.backoff_s * 2 ** (k - 1))
            attempt = self.run_attempt(task, first_attempt + k, base_commit, conflict)
            attempts.append(attempt)
            if attempt.status == TaskStatus.succeeded:
                break
        last = attempts[-1] if attempts else None
        status = last.status if last else TaskStatus.cancelled
        result = AgentResult(
            task_id=task.id, status=status, strategy=task.strategy,
            exit_reason=_exit_reason(last), attempts=attempts, retries=max(0, len(attempts) - 1),
            base_commit=base_commit, started_at=started, ended_at=utcnow(),
            failure=None if status == TaskStatus.succeeded else FailureInfo(
                kind=status.value, message=_exit_reason(last) or status.value),
        )
        if status == TaskStatus.succeeded and last is not None:
            head = last.commit or base_commit
            branch = branch_ref(self.record.run_id, task.id)
            self.ws.set_ref(branch, head, message=f"harness: {task.id} attempt {last.number}")
            result = result.model_copy(update={
                "branch": branch.removeprefix("refs/heads/"), "head_commit": head,
                "diff": last.diff})
        return result

    def sandbox_for(self, task: ResolvedTask) -> Sandbox:
        key = task.sandbox.model_dump_json()
        with self._lock:
            if key not in self._sandboxes:
                self._sandboxes[key] = get_sandbox(task.sandbox)
            return self._sandboxes[key]

    def run_attempt(self, task: ResolvedTask, number: int, base_commit: str,
                    conflict: ConflictRecord | None = None) -> Attempt:
        run_id = self.record.run_id
        adir = self.store.attempt_dir(task.id, number)
        hdir = adir / "harness"
        (hdir / "context").mkdir(parents=True, exist_ok=True)
        for f in task.context_files:
            shutil.copy2(f, hdir / "context" / f.name)
        spec = TaskSpec(
            run_id=run_id, task_id=task.id, attempt=number, prompt=task.prompt,
            strategy=task.strategy, context_files=[f.name for f in task.context_files],
            notes=task.notes, write_scope=task.write_scope, depends_on=task.depends_on,
            budget=Budget(timeout_s=task.timeout_s, retries=task.retries, backoff_s=task.backoff_s,
                          steps=task.max_steps, stall_s=task.stall_s,
                          log_bytes=task.max_log_bytes),
            agent=task.agent, sandbox=task.sandbox, base_commit=base_commit, conflict=conflict,
            env=task.env,
        )
        (hdir / "task.json").write_text(spec.model_dump_json(indent=2))
        if conflict is not None:
            (hdir / "context" / "conflict.json").write_text(conflict.model_dump_json(indent=2))
        log_path = adir / "output.log"
        wt_path = self.ws.root / "worktrees" / run_id / f"{task.id}.{number}"
        started = utcnow()
        self.store.event("attempt_started", task=task.id, attempt=number, base=base_commit,
                         worktree=str(wt_path))
        self.ws.create_worktree(worktree_name(run_id, task.id, number), wt_path, base_commit)
        with self._lock:
            self.record = self.record.model_copy(
                update={"worktrees": [*self.record.worktrees, str(wt_path)]})
        sandbox = self.sandbox_for(task)
        res: SandboxResult = get_agent(task.agent).run(spec, sandbox, wt_path, hdir, log_path)
        status = _status_of(res)
        commit, diff = self.ws.commit_worktree(wt_path, base_commit, _message(run_id, task, number))
        ref = None
        violations: list[str] = []
        if commit:
            ref = attempt_ref(run_id, task.id, number)
            self.ws.set_ref(ref, commit, message=f"harness: {task.id} attempt {number}")
            allowed = scope_matcher(task.write_scope)
            violations = [p for p in diff.paths if not allowed(p)]
        if status == TaskStatus.succeeded and violations:
            status = TaskStatus.scope_violation
        reason = res.reason
        if status == TaskStatus.scope_violation:
            reason = "changed outside write scope: " + ", ".join(violations[:5])
        elif res.reason == "stalled":
            reason = f"no output for {task.stall_s:g}s"
        elif res.reason == "steps":
            reason = f"step budget of {task.max_steps} spent"
        elif status == TaskStatus.failed:
            reason = f"exit code {res.exit_code}"
        elif status == TaskStatus.succeeded and not commit:
            reason = "no changes"
        attempt = Attempt(
            number=number, status=status, exit_code=res.exit_code, reason=reason,
            started_at=started, ended_at=utcnow(), duration_s=res.duration_s,
            base_commit=base_commit, commit=commit, ref=ref, log_path=str(log_path),
            output_tail=res.output_tail[-2000:], scope_violations=violations,
            steps=res.steps, tool_trace=res.trace,
            sandbox=sandbox.name, image_id=res.image_id, diff=diff if commit else None,
        )
        self.store.event("attempt_finished", task=task.id, attempt=number, status=status.value,
                         exit_code=res.exit_code, reason=reason, duration_s=res.duration_s,
                         steps=res.steps, commit=commit)
        return attempt


def _status_of(res: SandboxResult) -> TaskStatus:
    if res.timed_out:
        return TaskStatus.timed_out
    if res.reason == "stalled":
        return TaskStatus.stalled
    if res.reason == "steps":
        return TaskStatus.failed
    if res.reason in ("oom", "start_failed") or res.exit_code is None:
        return TaskStatus.crashed
    if res.exit_code != 0:
        return TaskStatus.failed
    return TaskStatus.succeeded


def _exit_reason(attempt: Attempt | None) -> str | None:
    if attempt is None:
        return "cancelled before it started"
    return attempt.reason


def _message(run_id: str, task: ResolvedTask, number: int) -> str:
    title = f"harness({task.id}): attempt {number}"
    if task.strategy:
        title += f" [{task.strategy}]"
    prompt = "\n".join(task.prompt.strip().splitlines()[:12])
    trailers = [f"Harness-Run: {run_id}", f"Harness-Task: {task.id}", f"Harness-Attempt: {number}",
                f"Harness-Agent: {task.agent.type}"]
    if task.strategy:
        trailers.append(f"Harness-Strategy: {task.strategy}")
    body = f"{prompt}\n\n" if prompt else ""
    return f"{title}\n\n{body}" + "\n".join(trailers) + "\n"


def _line(done: int, total: int, result: AgentResult) -> str:
    n = len(result.attempts)
    secs = sum(a.duration_s for a in result.attempts)
    why = f" ({result.exit_reason})" if result.exit_reason and result.status != TaskStatus.succeeded else ""
    return (f"[{done}/{total}] {result.task_id}: {result.status.value}{why}, "
            f"{n} attempt{'s' if n != 1 else ''}, {secs:.1f}s")
