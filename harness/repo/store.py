"""Run records and the append-only event log, under `<common git dir>/harness/runs/<run>/`.

`events.jsonl` is the source of truth: one JSON object a line with a sequence
number, appended and fsynced before the harness acts on it, never rewritten.
`record.json` is a snapshot of the RunRecord folded from those events, written
atomically (temporary file, fsync, rename) at a few points of a run's life (it was
created, it ended, integrate or gate changed it) and stamped with the last event it
reflects; a reader replays the events after that stamp. So a run's record I/O grows
linearly with its events, a kill at any instant leaves a readable run, and a torn
last line (killed mid-write) is ignored.

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
from ..errors import HarnessError, RecordError, RunBusy, UsageError
from ..records import RunRecord, utcnow
from ..versioning import version_problem
from .workspace import Workspace

# Events whose payload changes the record; every other kind is history only.
_FOLDED = {"run_created", "attempt_started", "task_finished", "record_updated", "run_resumed", "run_ended"}


class RunStore:
    def __init__(self, ws: Workspace, run_id: str) -> None:
        self.ws = ws
        self.run_id = run_id
        self.dir = ws.root / "runs" / run_id
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._appended = False  # once this store wrote a whole line, the log ends with one
        self._lock_fd: int | None = None

    # --- where things go -------------------------------------------------------------

    @property
    def record_path(self) -> Path:
        return self.dir / "record.json"

    @property
    def events_path(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.dir / "lock"

    def attempt_dir(self, task_id: str, attempt: int) -> Path:
        return self.dir / "tasks" / task_id / str(attempt)

    def exists(self) -> bool:
        return self.record_path.exists() or self.events_path.exists()

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
                holder = _read_holder(fd)
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
            return _read_holder(self._lock_fd)
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd) or {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

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
        """The record: the snapshot, with every later event folded in, and a run whose
        process is gone shown as `interrupted`. Raises UsageError for an unknown run
        and RecordError (one line naming the file) for an unreadable one."""
        if not self.exists():
            if self.dir.is_dir():
                raise RecordError(f"run {self.run_id!r}: {self.record_path}: no record (the run "
                                  "stopped before writing one)")
            raise UsageError(f"unknown run {self.run_id!r}")
        base: dict[str, Any] | None = None
        snap_error = None
        try:
            base = json.loads(self.record_path.read_text(encoding="utf-8"))
            if not isinstance(base, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            pass
        except (ValueError, UnicodeDecodeError) as exc:
            base, snap_error = None, f"{self.record_path}: unreadable ({_short(exc)})"
        after = base.get("seq") if base is not None else 0
        if base is not None and after is None:
            after = None  # a record written before the log was the source of truth
        if after is not None:
            for ev in self._read_events():
                if ev["seq"] > after:
                    try:
                        base = _fold(base, ev)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        raise RecordError(f"run {self.run_id!r}: {self.events_path}: malformed event "
                                          f"{ev['seq']} ({type(exc).__name__}: {_short(exc)})") from None
        if base is None:
            raise RecordError(f"run {self.run_id!r}: " + (snap_error or f"{self.events_path}: no run_created event"))
        problem = version_problem(base)
        if problem:
            raise RecordError(f"run {self.run_id!r}: {self.record_path}: {problem}")
        try:
            record = RunRecord.model_validate(base)
        except ValidationError as exc:
            raise RecordError(f"run {self.run_id!r}: {self.record_path}: not a run record "
                              f"({_short(exc)})") from None
        if record.status == "running" and self.holder() is None:
            record = record.model_copy(update={"status": "interrupted"})
        return record

    # --- events ----------------------------------------------------------------------

    def _next_seq(self) -> int:
        if self._seq is None:
            events = self._read_events()
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

    def _read_events(self) -> list[dict[str, Any]]:
        try:
            raw = self.events_path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # torn by a kill mid-write: the action it announced never happened
            if isinstance(ev, dict) and isinstance(ev.get("seq"), int):
                out.append(ev)
        return out

    def events(self) -> list[dict[str, Any]]:
        return self._read_events()

    def task_progress(self, task_id: str, run_status: str) -> dict[str, Any]:
        """Where a task without a result stands, from the log: `running` (an attempt
        started and not finished), `pending`, or as the run left it (`interrupted`,
        `cancelled`); with the attempts it finished so far."""
        started: dict[int, dict] = {}
        finished: dict[int, dict] = {}
        for ev in self._read_events():
            if ev.get("task") != task_id or ev.get("attempt") is None:
                continue
            if ev["kind"] == "attempt_started":
                started[ev["attempt"]] = {"attempt": ev["attempt"], "started_at": ev["time"],
                                          **{k: v for k, v in ev["payload"].items() if k in ("worktree", "base")}}
            elif ev["kind"] == "attempt_finished":
                finished[ev["attempt"]] = ev["payload"].get("record") or ev["payload"]
        live = [started[n] for n in sorted(started) if n not in finished]
        status = ("running" if live else "pending") if run_status == "running" else run_status
        return {"task_id": task_id, "status": status, "current": live[-1] if live else None,
                "attempts": [finished[n] for n in sorted(finished)],
                "log": str(self.attempt_dir(task_id, live[-1]["attempt"]) / "output.log") if live else None}


def _fold(record: dict[str, Any] | None, ev: dict[str, Any]) -> dict[str, Any] | None:
    kind, p = ev.get("kind"), ev.get("payload") or {}
    if kind not in _FOLDED:
        return record
    if kind == "run_created":
        return dict(p["record"])
    if record is None:
        return None
    record = dict(record)
    if kind == "attempt_started" and p.get("worktree"):
        if p["worktree"] not in record.get("worktrees", []):
            record["worktrees"] = [*record.get("worktrees", []), p["worktree"]]
    elif kind == "task_finished" and "result" in p:
        record["tasks"] = {**record.get("tasks", {}), ev["task"]: p["result"]}
    elif kind == "record_updated":
        record.update(p.get("fields", {}))
    elif kind == "run_resumed":
        record.update(status="running", ended_at=None, cancelled_by=None)
    elif kind == "run_ended":
        record.update(status=p["status"], ended_at=ev["time"], cancelled_by=p.get("cancelled_by"))
    return record


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


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None


def _describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process holds its lock"
    return (f"{holder.get('what', 'a writer')} by pid {holder.get('pid')} on {holder.get('host')} "
            f"since {str(holder.get('since', '?'))[:19]}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class RunEntry:
    """One run as `harness status` lists it: its record, or why it is unreadable."""

    def __init__(self, run_id: str, record: RunRecord | None, error: str | None, holder: dict | None) -> None:
        self.run_id = run_id
        self.record = record
        self.error = error
        self.holder = holder


def list_runs(ws: Workspace) -> list[RunEntry]:
    """Every run of the repository, oldest first; an unreadable one is listed with why."""
    runs_dir = ws.root / "runs"
    if not runs_dir.is_dir():
        return []
    entries = []
    for d in runs_dir.iterdir():
        if not d.is_dir():
            continue
        store = RunStore(ws, d.name)
        try:
            entries.append(RunEntry(d.name, store.load(), None, store.holder()))
        except HarnessError as exc:
            entries.append(RunEntry(d.name, None, str(exc), None))
    return sorted(entries, key=lambda e: (e.record.created_at.replace(tzinfo=None) if e.record and e.record.created_at
                                           else datetime.min, e.run_id))

