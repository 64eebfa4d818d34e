"""Run records and the append-only event log, under `<common git dir>/harness/runs/<run>/`.

`record.json` is the RunRecord, rewritten atomically as the run goes; `events.jsonl`
only ever grows, one JSON object a line with a sequence number; every attempt has
its own folder with its log and the task spec it was handed.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import UsageError
from .schema import RunRecord, utcnow
from .workspace import Workspace


class RunStore:
    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws = ws
        self.run_id = run_id
        self.dir = ws.root / "runs" / run_id
        self._lock = threading.Lock()
        self._seq = self._last_seq()

    # --- where things go -------------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.dir / "record.json"

    @property
    def events_path(self) -> Path:
        return self.dir / "events.jsonl"

    def attempt_dir(self, task_id: str, attempt: int) -> Path:
        return self.dir / "tasks" / task_id / str(attempt)

    def exists(self) -> bool:
        return self.record_path.exists()

    # --- records ---------------------------------------------------------------------

    def create(self, record: RunRecord) -> None:
        """Start the run's folder. Raises UsageError when the run id is taken."""
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise UsageError(f"run {self.run_id!r} exists already") from None
        self.save(record)

    def save(self, record: RunRecord) -> None:
        with self._lock:
            tmp = self.record_path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(record.model_dump_json(indent=2))
            os.replace(tmp, self.record_path)

    def load(self) -> RunRecord:
        if not self.record_path.exists():
            raise UsageError(f"unknown run {self.run_id!r}")
        return RunRecord.model_validate_json(self.record_path.read_text())

    # --- events ----------------------------------------------------------------------

    def _last_seq(self) -> int:
        try:
            with open(self.events_path, "rb") as fh:
                lines = fh.read().splitlines()
            return json.loads(lines[-1])["seq"] if lines else 0
        except (FileNotFoundError, ValueError, KeyError):
            return 0

    def event(self, kind: str, task: str | None = None, attempt: int | None = None,
              **payload: Any) -> None:
        with self._lock:
            self._seq += 1
            line = {"seq": self._seq, "time": utcnow().isoformat(), "run": self.run_id,
                    "task": task, "attempt": attempt, "kind": kind, "payload": payload}
            with open(self.events_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, default=str) + "\n")

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]


def list_runs(ws: Workspace) -> list[RunRecord]:
    runs_dir = ws.root / "runs"
    if not runs_dir.is_dir():
        return []
    records = []
    for d in runs_dir.iterdir():
        rec = d / "record.json"
        if rec.exists():
            records.append(RunRecord.model_validate_json(rec.read_text()))
    return sorted(records, key=lambda r: r.created_at or datetime.min)


def open_run(repo: Path | str, run_id: str) -> tuple[Workspace, RunStore, RunRecord]:
    """The workspace, store and record of an existing run. Raises UsageError."""
    ws = Workspace(repo)
    store = RunStore(ws, run_id)
    return ws, store, store.load()
