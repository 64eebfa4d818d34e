"""An open run: the handle every stage after `run` hands to the next one.

`Run.open` reads a run once (its workspace, store and record); integrate, gate,
forecast and the bench take the `Run` rather than a repository path and run id,
so no stage reopens what the one before it already held. The plan the run started
with is kept typed beside its record (`plan.json`, see `save_plan`)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from ..config import AgentConfig, ResolvedPlan, ResolvedTask, RunConfig, SandboxConfig
from ..ids import check_run_id
from ..errors import RecordError
from ..records import RunRecord
from .store import RunStore
from .workspace import Workspace

PLAN_FILE = "plan.json"

_AGENT: TypeAdapter = TypeAdapter(AgentConfig)
_SANDBOX: TypeAdapter = TypeAdapter(SandboxConfig)


class Run:
    """A run's workspace, store, current record and the typed plan it started with."""

    def __init__(self, ws: Workspace, store: RunStore, record: RunRecord,
                 plan: ResolvedPlan | None = None) -> None:
        self.ws = ws
        self.store = store
        self.record = record
        self._plan = plan

    @classmethod
    def open(cls, repo: Path | str, run_id: str) -> Run:
        """An existing run. Raises UsageError (unknown or invalid run id) or
        RecordError (unreadable record)."""
        check_run_id(run_id)
        ws = Workspace(repo)
        store = RunStore(ws, run_id)
        return cls(ws, store, store.load())

    @property
    def run_id(self) -> str:
        return self.store.run_id

    @property
    def plan(self) -> ResolvedPlan | None:
        """The plan as the run resolved it when it started, or None for a run older
        than `plan.json` (its record's raw plan is all there is). Raises RecordError
        when plan.json is unreadable."""
        if self._plan is None:
            self._plan = load_plan(self.store, self.record)
        return self._plan

    def reload(self) -> RunRecord:
        """Read the record again from the store (another writer may have changed it)."""
        self.record = self.store.load()
        return self.record

    def update(self, **fields: Any) -> RunRecord:
        """Set fields of the current record through the store (logged, snapshotted)."""
        self.record = self.store.update(self.record, **fields)
        return self.record


def save_plan(store: RunStore, plan: ResolvedPlan) -> None:
    """Keep the plan exactly as the run resolved it (strategy settings filled in, a
    copy of every context file), so a resume runs what the run started with, even
    after the plan or its strategy files were edited or deleted."""
    tasks = []
    for t in plan.tasks.values():
        ctx = store.dir / "context" / t.id
        ctx.mkdir(parents=True, exist_ok=True)
        for f in t.context_files:
            shutil.copy2(f, ctx / f.name)
        data = {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}
        data.update(agent=t.agent.model_dump(mode="json"), sandbox=t.sandbox.model_dump(mode="json"),
                    context_files=[f.name for f in t.context_files])
        tasks.append(data)
    body = json.dumps({"run": plan.run.model_dump(mode="json"), "raw": plan.raw, "tasks": tasks}, indent=2,
                      default=str)
    tmp = store.dir / f".{PLAN_FILE}.tmp"
    tmp.write_text(body)
    os.replace(tmp, store.dir / PLAN_FILE)


def load_plan(store: RunStore, record: RunRecord) -> ResolvedPlan | None:
    """The plan `save_plan` kept, or None when the run predates it. Raises
    RecordError when it is unreadable."""
    saved = store.dir / PLAN_FILE
    if not saved.is_file():
        return None
    try:
        data = json.loads(saved.read_text())
        run = RunConfig.model_validate(data["run"])
        tasks = {}
        for t in data["tasks"]:
            t = dict(t, agent=_AGENT.validate_python(t["agent"]), sandbox=_SANDBOX.validate_python(t["sandbox"]),
                     context_files=[store.dir / "context" / t["id"] / n for n in t["context_files"]])
            tasks[t["id"]] = ResolvedTask(**t)
        return ResolvedPlan(path=Path(record.plan_path) if record.plan_path else None, run=run,
                            tasks=tasks, raw=data.get("raw", record.plan))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"run {record.run_id!r}: {saved}: unreadable ({type(exc).__name__})") from None
