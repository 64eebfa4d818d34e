"""Run records and the append-only event log, under `<common git dir>/harness/runs/<run>/`.

`events.jsonl` is the source of truth: one JSON object a line with a sequence
number, appended and fsynced before the harness acts on it, never rewritten.
`record.json` is a snapshot of the RunRecord folded from those events, written
atomically (temporary file, fsync, rename) at a few points of a run's life (it was
created, it ended, integrate or gate changed it) and stamped with the last event it
reflects; a reader replays the events after that stamp. So a run's record I/O grows
linearly with its events, a kill at any instant leaves a readable run, and a torn
last line (killed mid-write) is ignored.

Reading (replaying, the lock's holder, a task's progress) is runlog.py's, in plain
JSON; this module adds the writes and the validated RunRecord.

Writers of one run serialize on a per-run lock (`lock`, an flock holding the
writer's pid and host): the run itself holds it from start to end, and `integrate`,
`gate`, `resume` and `clean` take it or are refused with one line. A record whose
status says `running` but whose lock nobody holds belongs to a process that is gone:
readers show it as `interrupted`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from .. import failpoints
from ..errors import RecordError, RunBusy, UsageError
from ..records import RunRecord, utcnow
from .runlog import RunLog, read_holder, short
from .workspace import Workspace


class RunStore(RunLog):
    """A run's log and record, written by the run's one writer and read by anyone."""

    def __init__(self, ws: Workspace, run_id: str) -> None:
        super().__init__(ws.root / "runs", run_id)
        self.ws = ws
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._appended = False  # once this store wrote a whole line, the log ends with one
        self._lock_fd: int | None = None

    # --- the writer's lock -----------------------------------------------------------

    @contextmanager
    def writer(self, what: str) -> Iterator[None]:
        """Hold the run's writer lock for the block. Raises RunBusy when another
        process (or another writer of this process) holds it."""
        if self._lock_fd is not None:  # the run itself, already holding it
            yield
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + 2.0  # a reader's probe holds it for microseconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = read_holder(fd)
                os.close(fd)
                raise RunBusy(f"run {self.run_id!r} is busy: {_describe_holder(holder)}; "
                              "wait for it to end (or stop it) and try again") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                                 "since": utcnow().isoformat()}).encode())
        self._lock_fd = fd
        try:
            yield
        finally:
            self._lock_fd = None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the writer lock ({pid, host, what, since}), or None."""
        if self._lock_fd is not None:
            return read_holder(self._lock_fd)
        return super().holder()

    # --- records ---------------------------------------------------------------------

    def reserve(self) -> None:
        """Make the run's folder, which must not exist yet. Raises UsageError."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir(exist_ok=False)
        except FileExistsError:
            raise UsageError(f"run {self.run_id!r} exists already") from None

    def create(self, record: RunRecord) -> None:
        """Start the run's log and record. Raises UsageError when the run id is taken."""
        self.dir.mkdir(parents=True, exist_ok=True)  # a run reserves it, then creates under its lock
        if self.events_path.exists() or self.record_path.exists():
            raise UsageError(f"run {self.run_id!r} exists already")
        self.event("run_created", record=record.model_dump(mode="json"))
        self.snapshot(record)

    def update(self, record: RunRecord, **fields: Any) -> RunRecord:
        """Set fields of the record: logged as one event, then snapshotted.
        Returns the updated record."""
        dumped = {k: _dump(v) for k, v in fields.items()}
        self.event("record_updated", fields=dumped)
        updated = RunRecord.model_validate({**record.model_dump(mode="json"), **dumped})
        self.snapshot(updated)
        return updated

    def snapshot(self, record: RunRecord) -> None:
        """Write the record atomically, stamped with the last event it reflects."""
        with self._lock:
            seq = self._next_seq() - 1
            data = record.model_copy(update={"seq": seq}).model_dump_json(indent=2)
            tmp = self.record_path.with_name(f".record.{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                failpoints.hit("snapshot")
                os.fsync(fh.fileno())
            os.replace(tmp, self.record_path)
            _fsync_dir(self.dir)

    def load(self) -> RunRecord:
        """The record (see RunLog.load_raw), validated into a RunRecord. Raises
        UsageError for an unknown run and RecordError (one line naming the file) for
        an unreadable one."""
        raw = self.load_raw()
        try:
            return RunRecord.model_validate(raw)
        except ValidationError as exc:
            raise RecordError(f"run {self.run_id!r}: {self.record_path}: not a run record "
                              f"({short(exc)})") from None

    # --- events ----------------------------------------------------------------------

    def _next_seq(self) -> int:
        if self._seq is None:
            events = self.read_events()
            self._seq = events[-1]["seq"] if events else 0
        return self._seq + 1

    def event(self, kind: str, task: str | None = None, attempt: int | None = None,
              **payload: Any) -> None:
        """Append one event and fsync it: once this returns, it survives a kill."""
        with self._lock:
            seq = self._next_seq()
            line = json.dumps({"seq": seq, "time": utcnow().isoformat(), "run": self.run_id,
                               "task": task, "attempt": attempt, "kind": kind, "payload": payload},
                              default=_dump) + "\n"
            fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                if not self._appended and os.fstat(fd).st_size and not _ends_with_newline(self.events_path):
                    os.write(fd, b"\n")  # close a line torn by a kill, so this one stands alone
                data = line.encode()
                if failpoints.hit("event"):
                    os.write(fd, data[: len(data) // 2])
                    failpoints.kill()
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._seq = seq
            self._appended = True

    def events(self) -> list[dict[str, Any]]:
        return self.read_events()


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process holds its lock"
    return (f"{holder.get('what', 'a writer')} by pid {holder.get('pid')} on {holder.get('host')} "
            f"since {str(holder.get('since', '?'))[:19]}")
