"""`harness replay`: a finished run's tasks run again against their recorded model answers.

A replay is a new run, `<run>.replay<n>` (its branches and refs reviewable like any
run's), with the original's saved plan: the same agents, sandboxes, timeouts and
retries, no dependencies between tasks (each attempt starts from the commit its
original started from, so what the dependencies produced is not needed again). Its
gateway calls no upstream and needs no key: attempt N of a replayed task is served
the recording of attempt N of the original (`tasks/<task>/<N>/model.jsonl`), call by
call, matched by sequence and request digest. The first request that differs is
refused and ends that attempt `failed`, its reason naming the call and the first
differing JSON path.

Retries are replayed the way they happened: the original's attempts run in turn,
each from its own base commit with its own recording, and, as in a run, the first
attempt that succeeds (or is cancelled, or over budget) is the task's last. A replay
whose attempt 1 succeeds where the original's failed has thus fewer attempts: that is
reported as not reproduced. No backoff is waited between them (no upstream to spare).

What is compared is trees, not commits: a replay's commits carry its own run id in
their trailers. A task is reproduced when no attempt diverged, as many attempts ran
as originally, and each attempt left the tree its original left (its commit's tree,
or its base's when it changed nothing); the task's headline tree is its branch
head's (for a task that did not succeed, its last attempt's).

An agent whose requests depend on anything but its checkout, its task and its
model's answers (the time, a random number, `$HARNESS_RUN`, a file outside the
repository) diverges: that is what the replay is for. Attempts of conflict retries
(`harness integrate --retry-conflicts`) are replayed without their conflict record.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, ConfigDict

from ..errors import UsageError
from ..ids import check_run_id
from ..progress import Progress, quiet
from ..records import AgentResult, Attempt, RunRecord
from ..repo.run import Run
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from .lifecycle import execute, prepare_resolved, recorded_plan
from .model import BLOBS_DIR, RunModel, total_spend
from .plan import ResolvedPlan, ResolvedTask
from .scheduler import STOPS_TASK, Orchestrator

REPORT_FILE = "replay.json"
"""In the replay run's folder: the `ReplayReport`."""


class AttemptReplay(BaseModel):
    """One replayed attempt beside its original."""

    model_config = ConfigDict(frozen=True)

    number: int
    original_status: str
    status: str | None
    """None when the replay never ran this attempt (an earlier one ended the task)."""
    original_tree: str | None
    tree: str | None
    diverged: str | None = None
    """The gateway's line for the first request that differed from the recording."""

    @property
    def same_tree(self) -> bool:
        return self.tree is not None and self.tree == self.original_tree


class TaskReplay(BaseModel):
    """One replayed task: its trees, statuses and attempts beside the original's."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    original_status: str
    status: str
    original_tree: str | None
    """Tree of the original's branch head (its last attempt's, when it had no branch)."""
    tree: str | None
    attempts: list[AttemptReplay]

    @property
    def same_tree(self) -> bool:
        return self.tree is not None and self.tree == self.original_tree

    @property
    def diverged(self) -> AttemptReplay | None:
        return next((a for a in self.attempts if a.diverged), None)

    @property
    def reproduced(self) -> bool:
        return self.same_tree and all(a.same_tree and not a.diverged for a in self.attempts)

    @property
    def why_not(self) -> str | None:
        """One line: what kept this task from being reproduced, or None."""
        if self.reproduced:
            return None
        d = self.diverged
        if d is not None:
            return f"attempt {d.number}: {d.diverged}"
        missing = [a.number for a in self.attempts if a.status is None]
        if missing:
            return (f"the replay ended after {len(self.attempts) - len(missing)} attempt(s), "
                    f"the original ran {len(self.attempts)}")
        other = next((a for a in self.attempts if not a.same_tree), None)
        if other is not None:
            return (f"attempt {other.number} left tree {_short(other.tree)}, the original "
                    f"{_short(other.original_tree)} ({other.status} vs {other.original_status})")
        return f"tree {_short(self.tree)}, the original {_short(self.original_tree)}"


class ReplayReport(BaseModel):
    """What `harness replay` found, task by task (also `replay.json` in the replay run's folder)."""

    schema_version: int = 1
    run_id: str
    """The replay's own run."""
    replay_of: str
    tasks: list[TaskReplay]

    @property
    def ok(self) -> bool:
        return bool(self.tasks) and all(t.reproduced for t in self.tasks)

    @property
    def summary(self) -> str:
        same = sum(t.reproduced for t in self.tasks)
        diverged = sum(t.diverged is not None for t in self.tasks)
        return (f"replay {self.run_id} of {self.replay_of}: {same} of {len(self.tasks)} task(s) reproduced "
                f"their tree" + (f", {diverged} diverged from the recording" if diverged else ""))


@dataclass
class ReplayJob:
    """Everything a replay needs, checked; nothing is created yet (see `prepare_replay`)."""

    source: Run
    attempts: dict[str, list[Attempt]]
    """The original attempts to replay, by task, in order."""
    recordings: dict[tuple[str, int], Path]
    """Each original attempt's model.jsonl, by (task, number); absent when it made no call."""
    ws: Workspace
    store: RunStore
    plan: ResolvedPlan
    record: RunRecord
    warnings: list[str]

    @property
    def run_id(self) -> str:
        return self.store.run_id


def prepare_replay(repo: Path, run_id: str, tasks: Iterable[str] = ()) -> ReplayJob:
    """Check that RUN can be replayed (for `tasks`, default: every task with model calls
    recorded) and name the replay run. Creates nothing. Raises UsageError for an unknown
    run or task, a run still running or without recordings, a task without any;
    RecordError for an unreadable record; SandboxUnavailable as a run would."""
    check_run_id(run_id)
    source = Run.open(repo, run_id)
    record = source.record
    if record.status == "running":
        raise UsageError(f"run {run_id!r} has not finished (running, or interrupted: `harness resume "
                         f"{run_id}` finishes it); only a finished run can be replayed")
    plan = recorded_plan(source)
    if plan.model is None:
        raise UsageError(f"run {run_id!r} has no [model] table: no model calls were recorded to replay")
    wanted = list(dict.fromkeys(tasks))
    for t in wanted:
        if t not in record.tasks or t not in plan.tasks:
            raise UsageError(f"run {run_id!r} has no finished task {t!r}")
    recordings: dict[tuple[str, int], Path] = {}
    attempts: dict[str, list[Attempt]] = {}
    for t in wanted or [t for t in record.task_order if t in record.tasks and t in plan.tasks]:
        mine = sorted(record.tasks[t].attempts, key=lambda a: a.number)
        found = {(t, a.number): p for a in mine
                 if (p := source.store.attempt_dir(t, a.number) / "model.jsonl").is_file() and p.stat().st_size}
        if not found:
            if wanted:
                raise UsageError(f"task {t!r} of run {run_id!r} made no model call: nothing to replay")
            continue
        recordings.update(found)
        attempts[t] = mine
    if not attempts:
        raise UsageError(f"run {run_id!r} has no recorded model calls to replay")
    replay_id = _next_id(source)
    run_cfg = plan.run.model_copy(update={"id": replay_id, "base": record.base_commit})
    replay_plan = ResolvedPlan(path=plan.path, run=run_cfg, raw=plan.raw, tasks={
        t: dataclasses.replace(plan.tasks[t], depends_on=[]) for t in attempts})
    ws, store, replay_plan, replay_record, warnings = prepare_resolved(replay_plan, repo, run_id=replay_id)
    return ReplayJob(source, attempts, recordings, ws, store, replay_plan, replay_record, warnings)


def _next_id(source: Run) -> str:
    taken = {r.split("/")[3] for r in source.ws.repo().references if r.startswith("refs/heads/harness/")}
    n = 1
    while True:
        candidate = f"{source.run_id}.replay{n}"
        if candidate not in taken and not RunStore(source.ws, candidate).dir.exists():
            check_run_id(candidate)
            return candidate
        n += 1


def replay_run(job: ReplayJob, *, progress: Progress = quiet) -> ReplayReport:
    """Run the replay `prepare_replay` checked, compare its trees with the original's,
    and return (and keep beside the run's record) the report."""

    def orchestrator(*args) -> Orchestrator:
        return ReplayOrchestrator(*args, job=job)

    record = execute(job.ws, job.store, job.plan, job.record, job.warnings, progress=progress,
                     orchestrator=orchestrator)
    report = compare(job, record)
    (job.store.dir / REPORT_FILE).write_text(report.model_dump_json(indent=2))
    return report


class ReplayOrchestrator(Orchestrator):
    """An Orchestrator whose gateway replays, and whose tasks run the original's attempts."""

    def __init__(self, *args, job: ReplayJob) -> None:
        super().__init__(*args)
        self.job = job

    def run(self, done: dict[str, AgentResult] | None = None,
            prior: dict[str, list[Attempt]] | None = None) -> RunRecord:
        self.store.event("replay", of=self.job.source.run_id)  # `harness resume` refuses a replay
        return super().run(done, prior)

    def start_model(self, seed: Iterable[tuple[str, Attempt]]) -> tuple[RunModel, str, dict]:
        """The gateway in replay mode: it serves the original's recordings, no upstream."""
        _link_blobs(self.job.source.store.dir / BLOBS_DIR, self.store.dir / BLOBS_DIR)
        first = min(self.plan.tasks.values(), key=lambda t: t.order)
        model = RunModel(self.plan.model, self.record.run_id, self.store.dir, self.sandbox_for(first),
                         replay=self.job.recordings)
        return model, model.start(), {"upstreams": [], "replay_of": self.job.source.run_id}

    def run_task(self, task: ResolvedTask, **_ignored) -> AgentResult:
        """The original's attempts in turn, each from its own base commit, until one ends the task."""
        results: list[AgentResult] = []
        for orig in self.job.attempts[task.id]:
            if self.cancelled:
                break
            r = super().run_task(task, base_commit=orig.base_commit, first_attempt=orig.number, retries=0)
            results.append(r)
            if r.status in STOPS_TASK:
                break
        if not results:
            return super().run_task(task, retries=-1)  # no attempt: cancelled before it started
        every = [a for r in results for a in r.attempts]
        return results[-1].model_copy(update={"attempts": every, "retries": max(0, len(every) - 1),
                                              "spend": total_spend(every), "started_at": results[0].started_at})


def _link_blobs(src: Path, dst: Path) -> None:
    """The recorded bodies, shared with the replay run (hard links where the disk allows):
    the replay's gateway reads them, and records its own beside them."""
    if not src.is_dir():
        return
    for dirpath, _, files in os.walk(src):
        out = dst / Path(dirpath).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            if (out / name).exists():
                continue
            try:
                os.link(Path(dirpath) / name, out / name)
            except OSError:
                shutil.copy2(Path(dirpath) / name, out / name)


def compare(job: ReplayJob, record: RunRecord) -> ReplayReport:
    """The replay's trees and statuses beside the original's, task by task and attempt by attempt."""
    from ..gateway import read_trace

    repo = job.ws.repo()

    def tree(commit: str | None) -> str | None:
        try:
            return str(repo[commit].tree_id) if commit else None
        except (KeyError, ValueError):
            return None

    tasks = []
    for t, originals in job.attempts.items():
        orig_result = job.source.record.tasks[t]
        result = record.tasks.get(t)
        mine = {a.number: a for a in (result.attempts if result else [])}
        rows = []
        for o in originals:
            a = mine.get(o.number)
            diverged = None
            if a is not None:
                trace = job.store.attempt_dir(t, a.number) / "model.jsonl"
                entries = read_trace(trace) if trace.is_file() else []
                diverged = next((e.get("error") for e in entries if e.get("outcome") == "replay_diverged"), None)
            rows.append(AttemptReplay(number=o.number, original_status=o.status.value,
                                      status=a.status.value if a else None,
                                      original_tree=tree(o.commit or o.base_commit),
                                      tree=tree(a.commit or a.base_commit) if a else None, diverged=diverged))
        tasks.append(TaskReplay(
            task_id=t, original_status=orig_result.status.value,
            status=result.status.value if result else "not run",
            original_tree=tree(_head(orig_result)), tree=tree(_head(result)) if result else None,
            attempts=rows))
    return ReplayReport(run_id=record.run_id, replay_of=job.source.run_id, tasks=tasks)


def _head(result: AgentResult) -> str | None:
    """The commit a task ended on: its branch head, else its last attempt's commit or base."""
    if result.head_commit:
        return result.head_commit
    if result.attempts:
        last = result.attempts[-1]
        return last.commit or last.base_commit
    return result.base_commit


def _short(tree: str | None) -> str:
    return tree[:12] if tree else "(none)"
