"""Runs a task DAG: at most `max_parallel` agents at once, each attempt in its own
worktree and sandbox, retries with backoff, failure isolation, a record for all."""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .. import failpoints
from ..agents import get_agent
from ..agents.base import Agent
from ..config import AgentConfig
from ..errors import GitError
from ..progress import Progress, quiet
from ..records import (AgentResult, Attempt, Budget, ConflictRecord, DiffStat, FailureInfo, RunRecord,
                       SandboxResult, TaskSpec, TaskStatus, utcnow)
from ..repo.guard import RepoGuard
from ..repo.store import RunStore
from ..repo.workspace import (Workspace, WorktreeCommit, attempt_ref, branch_ref, scope_matcher,
                              worktree_name)
from ..sandbox import get_sandbox
from ..sandbox.base import Sandbox
from .model import ModelOutcome, RunModel, cooldown_s, total_spend
from .plan import ResolvedPlan, ResolvedTask

STOPS_TASK = (TaskStatus.succeeded, TaskStatus.cancelled, TaskStatus.over_budget)
"""An attempt ending so is the task's last: done, stopped, or its model budget spent."""


class Orchestrator:
    """Drives the agents of one run. Thread-safe; one instance per run.

    Every state change is an event in the run's log before it is acted on, so a kill
    at any instant leaves a run that `harness resume` can finish. `cancel` (SIGINT,
    SIGTERM) stops every sandbox of the run; each interrupted attempt still commits
    what it produced to its attempt ref and ends `cancelled`."""

    def __init__(self, ws: Workspace, store: RunStore, plan: ResolvedPlan, record: RunRecord,
                 progress: Progress = quiet, *, agent_for: Callable[[AgentConfig], Agent] = get_agent) -> None:
        """`agent_for` makes the agent of a task from its config (the agents registry;
        a test hands in an in-process fake)."""
        self.ws = ws
        self.store = store
        self.plan = plan
        self.record = record
        self.progress = progress
        self.agent_for = agent_for
        self.cancelled_by: str | None = None
        self._sandboxes: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._live = 0
        self._done_count = 0
        self.model: RunModel | None = None
        """The run's model gateway while one runs (see `model_session`)."""
        self._verdict_upstreams: dict[tuple[str, int], str | None] = {}

    # --- stopping --------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self, why: str) -> None:
        """Stop the run (from a signal handler too: it only starts a thread). No new
        attempt starts; every live sandbox of the run is killed until none is left."""
        if self._cancel.is_set():
            return
        self.cancelled_by = why
        self._cancel.set()
        threading.Thread(target=self._stop_sandboxes, name="cancel", daemon=True).start()

    def _stop_sandboxes(self) -> None:
        # Repeated while attempts are live: one may be starting its container just now.
        while True:
            for sb in list(self._sandboxes.values()):
                try:
                    sb.stop(self.record.run_id, self.store.dir)
                except Exception:  # a dead daemon has nothing left running for us to stop
                    pass
            with self._lock:
                if self._live == 0:
                    return
            time.sleep(0.5)

    # --- the model gateway -----------------------------------------------------------

    @contextmanager
    def model_session(self, seed: Iterable[tuple[str, Attempt]] = ()) -> Iterator[None]:
        """While the block runs, the plan's [model] gateway serves this run's attempts
        (nothing when the plan has none, or one is already running). It is stopped and
        its route closed however the block ends. `seed`: earlier attempts whose spend
        counts against the task and run budgets."""
        started = None if self.model is not None else self.start_model(seed)
        if started is None:
            yield
            return
        model, url, about = started
        self.store.event("model_gateway_started", url=url, network=model.route.network, **about)
        self.model = model
        try:
            yield
        finally:
            self.model = None
            spend = model.spend()
            self.store.event("model_gateway_stopped", spend=spend, recording_errors=model.close())

    def start_model(self, seed: Iterable[tuple[str, Attempt]]) -> tuple[RunModel, str, dict] | None:
        """The run's gateway, started on the sandbox's route: (it, its URL, what the
        start event says of it); None when the plan has no [model]."""
        config = self.plan.model
        if config is None:
            return None
        first = min(self.plan.tasks.values(), key=lambda t: t.order)
        model = RunModel(config, self.record.run_id, self.store.dir, self.sandbox_for(first))
        return model, model.start(seed), {"upstreams": [u.name for u in config.upstream]}

    # --- the DAG ---------------------------------------------------------------------

    def run(self, done: dict[str, AgentResult] | None = None,
            prior: dict[str, list[Attempt]] | None = None) -> RunRecord:
        """Run every task not in `done` (a resumed run's finished tasks), continuing
        after the `prior` attempts of each; return the finished record (also saved)."""
        tasks = self.plan.tasks
        results: dict[str, AgentResult] = dict(done or {})
        prior = prior or {}
        pending = [t for t in sorted(tasks, key=lambda t: tasks[t].order) if t not in results]
        self._done_count = len(results)
        self.store.event("run_started", tasks=len(tasks), max_parallel=self.plan.run.max_parallel,
                         resumed=len(results))
        seed = [(t, a) for t, r in results.items() for a in r.attempts]
        seed += [(t, a) for t, attempts in prior.items() for a in attempts]
        with self.model_session(seed), ThreadPoolExecutor(max_workers=self.plan.run.max_parallel,
                                                          thread_name_prefix="agent") as pool:
            running: dict[Future, str] = {}

            def schedule() -> None:
                progressed = True
                while progressed:
                    progressed = False
                    for tid in list(pending):
                        deps = [results.get(d) for d in tasks[tid].depends_on]
                        ended = [r for r in deps if r is not None and r.status != TaskStatus.succeeded]
                        if not ended and None in deps:
                            continue
                        pending.remove(tid)
                        progressed = True
                        if ended or self._cancel.is_set():
                            results[tid] = self._not_run(tid, ended[0] if ended else None)
                            self._finish(results[tid])
                        else:
                            heads = [r.head_commit for r in deps if r is not None and r.head_commit]
                            running[pool.submit(self._run_task_safe, tasks[tid], heads,
                                                prior.get(tid, []))] = tid

            schedule()
            while running:
                try:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    if self._cancel.is_set():
                        raise  # a second Ctrl-C: the caller forces the exit
                    self.cancel("SIGINT")
                    continue
                for fut in finished:
                    tid = running.pop(fut)
                    results[tid] = fut.result()
                    self._finish(results[tid])
                schedule()
        status = "cancelled" if self._cancel.is_set() else "finished"
        self.store.event("run_ended", status=status, ok=self.record.ok, cancelled_by=self.cancelled_by)
        self.record = self.record.model_copy(update={"status": status, "ended_at": utcnow(),
                                                     "cancelled_by": self.cancelled_by,
                                                     "spend": total_spend(self.record.tasks.values())})
        self.store.snapshot(self.record)
        return self.record

    def _not_run(self, tid: str, dep: AgentResult | None) -> AgentResult:
        """A task that will not start: its dependency ended badly, or the run stops."""
        task = self.plan.tasks[tid]
        if dep is not None and dep.status != TaskStatus.cancelled:
            why = f"dependency {dep.task_id!r} ended {dep.status.value}"
            return AgentResult(task_id=tid, status=TaskStatus.dependency_failed, exit_reason=why,
                               strategy=task.strategy, failure=FailureInfo(kind="dependency", message=why))
        why = "cancelled before it started" + (f" ({self.cancelled_by})" if self.cancelled_by else "")
        return AgentResult(task_id=tid, status=TaskStatus.cancelled, exit_reason=why, strategy=task.strategy,
                           failure=FailureInfo(kind="cancelled", message=why))

    def _finish(self, result: AgentResult) -> None:
        self._record_result(result)
        with self._lock:
            self._done_count += 1
            line = _line(self._done_count, len(self.plan.tasks), result)
        self.progress(line)

    def _record_result(self, result: AgentResult) -> None:
        self.store.event("task_finished", task=result.task_id, status=result.status.value,
                         reason=result.exit_reason, head=result.head_commit, result=result)
        with self._lock:
            self.record = self.record.model_copy(update={"tasks": {**self.record.tasks, result.task_id: result}})

    # --- one task --------------------------------------------------------------------

    def _run_task_safe(self, task: ResolvedTask, dep_heads: list[str],
                       prior: list[Attempt] | None = None) -> AgentResult:
        """run_task, with any failure of the harness's own turned into this task's
        `crashed` result (the traceback in the task's crash.log): the others go on."""
        try:
            return self.run_task(task, dep_heads=dep_heads, prior=prior or [])
        except Exception as exc:
            log = self._crash_log(task.id, exc)
            why = f"harness error: {type(exc).__name__}: {_first_line(exc)} (traceback in {log})"
            return AgentResult(task_id=task.id, status=TaskStatus.crashed, exit_reason=why,
                               strategy=task.strategy, attempts=list(prior or []),
                               failure=FailureInfo(kind=type(exc).__name__, message=why))

    def _crash_log(self, task_id: str, exc: BaseException) -> Path:
        path = self.store.dir / "tasks" / task_id / "crash.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{utcnow().isoformat()}\n"
                         + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        except OSError:
            pass
        return path

    def run_task(self, task: ResolvedTask, *, dep_heads: list[str] | None = None,
                 base_commit: str | None = None, conflict: ConflictRecord | None = None,
                 first_attempt: int | None = None, retries: int | None = None,
                 prior: list[Attempt] | None = None) -> AgentResult:
        """Run a task's attempts until one succeeds or its retries are spent. `prior`
        attempts (of a resumed run) come first; cancelled ones spend no retry."""
        started = utcnow()
        prior = list(prior or [])
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
        if retries is not None:
            runs = retries + 1
        elif prior and prior[-1].status == TaskStatus.succeeded:
            runs = 0  # it succeeded before the harness died; only its result was missing
        else:
            # A cancelled or crashed attempt (the harness or its sandbox broke) spends
            # no retry: a resumed task gets the attempts it had left, at least one
            # when the last one was cut short.
            spent = sum(1 for a in prior if a.status not in (TaskStatus.cancelled, TaskStatus.crashed))
            runs = task.retries + 1 - spent
            if prior and prior[-1].status in (TaskStatus.cancelled, TaskStatus.crashed):
                runs = max(runs, 1)
        if first_attempt is None:
            first_attempt = max((a.number for a in prior), default=0) + 1
        attempts: list[Attempt] = []
        for k in range(max(0, runs)):
            if self._cancel.is_set():
                break
            if k and self._cancel.wait(self._retry_wait(task, k, attempts[-1])):
                break
            attempt = self.run_attempt(task, first_attempt + k, base_commit, conflict)
            attempts.append(attempt)
            if attempt.status in STOPS_TASK:
                break
        every = prior + attempts
        last = every[-1] if every else None
        if last is None or (self._cancel.is_set() and last.status != TaskStatus.succeeded):
            status = TaskStatus.cancelled
        else:
            status = last.status
        by = f" ({self.cancelled_by})" if self.cancelled_by else ""
        if status == TaskStatus.cancelled and last is None:
            reason = "cancelled before it started" + by
        elif status == TaskStatus.cancelled and last.status != TaskStatus.cancelled:
            reason = f"cancelled{by} after attempt {last.number} ended {last.status.value}: {_exit_reason(last)}"
        else:
            reason = _exit_reason(last)
        result = AgentResult(
            task_id=task.id, status=status, strategy=task.strategy,
            exit_reason=reason, attempts=every, retries=max(0, len(every) - 1),
            base_commit=base_commit, started_at=started, ended_at=utcnow(), spend=total_spend(every),
            failure=None if status == TaskStatus.succeeded else FailureInfo(
                kind=status.value, message=reason or status.value),
        )
        if status == TaskStatus.succeeded and last is not None:
            head = last.commit or base_commit
            branch = branch_ref(self.record.run_id, task.id)
            self.ws.set_ref(branch, head, message=f"harness: {task.id} attempt {last.number}")
            result = result.model_copy(update={
                "branch": branch.removeprefix("refs/heads/"), "head_commit": head,
                "diff": last.diff, "base_commit": last.base_commit})
        return result

    def _retry_wait(self, task: ResolvedTask, k: int, last: Attempt) -> float:
        """Backoff before retry k; after an unavailable upstream, at least its cool-down
        (sooner, its circuit would refuse the new attempt's first call)."""
        wait = task.backoff_s * 2 ** (k - 1)
        if last.status == TaskStatus.upstream_unavailable and self.plan.model is not None:
            upstream = self._verdict_upstreams.get((task.id, last.number))
            wait = max(wait, cooldown_s(self.plan.model, upstream))
        return wait

    def sandbox_for(self, task: ResolvedTask) -> Sandbox:
        key = task.sandbox.model_dump_json()
        with self._lock:
            if key not in self._sandboxes:
                self._sandboxes[key] = get_sandbox(task.sandbox)
            return self._sandboxes[key]

    def worktree_path(self, task_id: str, number: int) -> Path:
        return self.ws.root / "worktrees" / self.record.run_id / f"{task_id}.{number}"

    def run_attempt(self, task: ResolvedTask, number: int, base_commit: str,
                    conflict: ConflictRecord | None = None) -> Attempt:
        """One attempt, start to end. Whatever happens in it (a sandbox that breaks,
        a daemon that goes away, a cancel) ends as an Attempt with a status and a
        reason, and whatever the agent wrote is committed to the attempt's ref."""
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
        wt_path = self.worktree_path(task.id, number)
        guard = self._repo_guard()
        started = utcnow()
        self.store.event("attempt_started", task=task.id, attempt=number, base=base_commit,
                         worktree=str(wt_path))
        try:
            self.ws.create_worktree(worktree_name(run_id, wt_path.name), wt_path, base_commit)
        except Exception as exc:  # no checkout, no agent: this attempt crashed, the task may retry
            log = self._crash_log(task.id, exc)
            return self._attempt_finished(task, Attempt(
                number=number, status=TaskStatus.crashed, started_at=started, ended_at=utcnow(),
                duration_s=0.0, base_commit=base_commit, log_path=str(log_path), sandbox=task.sandbox.type,
                reason=f"cannot make the worktree: {type(exc).__name__}: {_first_line(exc)} (see {log})"))
        with self._lock:
            self.record = self.record.model_copy(
                update={"worktrees": [*self.record.worktrees, str(wt_path)]})
            self._live += 1
        sandbox = None
        model: ModelOutcome | None = None
        try:
            if self._cancel.is_set():
                res = SandboxResult(exit_code=None, duration_s=0.0, reason="cancelled")
            else:
                sandbox = self.sandbox_for(task)
                res, model = self._run_agent(task, spec, sandbox, adir, wt_path, hdir, log_path)
        except Exception as exc:  # the sandbox broke (daemon gone, say): this attempt crashed
            self._crash_log(task.id, exc)
            _append(log_path, f"\nharness: the sandbox failed: {type(exc).__name__}: {_first_line(exc)}\n")
            res = SandboxResult(exit_code=None, duration_s=(utcnow() - started).total_seconds(),
                                reason=f"sandbox error: {_first_line(exc)}")
        finally:
            with self._lock:
                self._live -= 1
        status = _status_of(res)
        verdict = model.verdict if model is not None else None
        if verdict is not None:
            status = (TaskStatus(verdict.status) if verdict.status in ("over_budget", "upstream_unavailable")
                      else TaskStatus.failed)
            with self._lock:
                self._verdict_upstreams[(task.id, number)] = verdict.upstream
        if self._cancel.is_set() and status != TaskStatus.succeeded:
            status = TaskStatus.cancelled
        done, ref, failed = self._commit_step(task, number, wt_path, base_commit, guard)
        commit, diff = done.commit, done.diff
        violations: list[str] = []
        if commit:
            allowed = scope_matcher(task.write_scope)
            violations = [p for p in diff.paths if not allowed(p)]
        if status == TaskStatus.succeeded and violations:
            status = TaskStatus.scope_violation
        reason = res.reason
        if status == TaskStatus.cancelled:
            reason = f"cancelled ({self.cancelled_by or 'stopped'})" + (
                f"; its work is kept on {ref}" if ref else "")
        elif status == TaskStatus.scope_violation:
            reason = "changed outside write scope: " + ", ".join(violations[:5])
        elif verdict is not None:
            reason = model.reason
        elif res.reason == "stalled":
            reason = f"no output for {task.stall_s:g}s" + (" and no model call" if model is not None else "")
        elif res.reason == "steps":
            reason = f"step budget of {task.max_steps} spent"
        elif status == TaskStatus.failed:
            reason = res.reason or f"exit code {res.exit_code}"
        elif status == TaskStatus.succeeded and not commit:
            reason = "no changes"
        if failed:
            status = TaskStatus.crashed
            reason = failed
        if done.notes:
            reason = "; ".join([reason, *done.notes] if reason else done.notes)
        attempt = Attempt(
            number=number, status=status, exit_code=res.exit_code, reason=reason,
            started_at=started, ended_at=utcnow(), duration_s=res.duration_s,
            base_commit=base_commit, commit=commit, ref=ref, log_path=str(log_path),
            output_tail=res.output_tail[-2000:], scope_violations=violations,
            steps=res.steps, tool_trace=res.trace,
            sandbox=sandbox.name if sandbox else task.sandbox.type, image_id=res.image_id,
            diff=diff if commit else None, spend=model.spend if model is not None else None,
        )
        keep = self.plan.run.keep_worktrees
        if not failed and (keep == "none" or (keep == "failed" and status == TaskStatus.succeeded)):
            try:
                self.ws.remove_worktree(wt_path)
            except GitError as exc:  # the agent made it undeletable: it stays for `harness clean`
                self.store.event("worktree_kept", task=task.id, attempt=number, reason=str(exc))
        return self._attempt_finished(task, attempt)

    def _run_agent(self, task: ResolvedTask, spec: TaskSpec, sandbox: Sandbox, adir: Path, wt_path: Path,
                   hdir: Path, log_path: Path) -> tuple[SandboxResult, ModelOutcome | None]:
        """The agent in its sandbox; with a model gateway, through the attempt's token
        (revoked when it ends, however it ends) and what the gateway says of it."""
        agent = self.agent_for(task.agent)
        if self.model is None:
            return agent.run(spec, sandbox, wt_path, hdir, log_path), None
        ma = self.model.attempt(task, spec.attempt, adir, sandbox)
        try:
            res = agent.run(spec, ma, wt_path, hdir, log_path)
        finally:
            outcome = ma.finish()
        return res, outcome

    def _attempt_finished(self, task: ResolvedTask, attempt: Attempt) -> Attempt:
        self.store.event("attempt_finished", task=task.id, attempt=attempt.number, status=attempt.status.value,
                         exit_code=attempt.exit_code, reason=attempt.reason, duration_s=attempt.duration_s,
                         steps=attempt.steps, commit=attempt.commit, record=attempt)
        return attempt

    def commit_attempt(self, task_id: str, number: int, base_commit: str, wt_path: Path,
                       message: str) -> tuple[WorktreeCommit, str | None]:
        """Commit what the attempt left in its worktree (from the host, through the git
        dir the harness made for it) and point its attempt ref at it. Returns the
        commit (None when nothing changed) with its diff and notes, and the ref."""
        done = self.ws.commit_worktree(wt_path, base_commit, message)
        if not done.commit:
            return done, None
        failpoints.hit("commit")
        ref = attempt_ref(self.record.run_id, task_id, number)
        self.ws.set_ref(ref, done.commit, message=f"harness: {task_id} attempt {number}")
        return done, ref

    def _repo_guard(self) -> RepoGuard:
        """The run's guard on the user's repository, snapshot before the first
        attempt of this orchestrator starts (the harness wrote nothing before)."""
        with self._lock:
            guard = getattr(self, "_guard", None)
            if guard is None:
                guard = self._guard = RepoGuard(self.ws)
            return guard

    def _commit_step(self, task: ResolvedTask, number: int, wt_path: Path, base_commit: str,
                     guard: RepoGuard) -> tuple[WorktreeCommit, str | None, str | None]:
        """Commit the attempt's worktree, then check that the user's repository is as
        it was. Returns the commit, its ref and, when the commit failed or the user's
        repository changed, why (the attempt then counts as crashed)."""
        try:
            done, ref = self.commit_attempt(task.id, number, base_commit, wt_path,
                                            attempt_message(self.record.run_id, task, number))
            failed = None
        except Exception as exc:
            log = self._crash_log(task.id, exc)
            done, ref = WorktreeCommit(None, DiffStat(), []), None
            failed = f"cannot commit the attempt's work: {type(exc).__name__}: {_first_line(exc)} (see {log})"
            self.store.event("commit_failed", task=task.id, attempt=number, error=str(exc))
        changed = guard.check()
        if changed:
            self.store.event("repo_guard_breach", task=task.id, attempt=number, changes=changed)
            failed = "the user's repository changed during this attempt: " + "; ".join(changed)
        if done.notes:
            self.store.event("worktree_sanitized", task=task.id, attempt=number, notes=done.notes)
        return done, ref, failed


def _status_of(res: SandboxResult) -> TaskStatus:
    if res.reason == "cancelled":
        return TaskStatus.cancelled
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


def attempt_message(run_id: str, task: ResolvedTask, number: int) -> str:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _append(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        pass
