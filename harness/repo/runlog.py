"""A run's files, read as plain JSON: the quick commands' path.

`harness status` and `harness show` read a run without importing the record models
or git: this module finds the repository's common git dir by the `.git` entries on
disk, replays `events.jsonl` over the `record.json` snapshot (see store.py for how
they are written) and asks the lock whether the writer is alive. What it returns is
the record's JSON form, the same thing `--json` prints; `RunStore.load()` validates
that form into a RunRecord for everything else.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ..errors import HarnessError, RecordError, UsageError
from ..versioning import SCHEMA_VERSION, version_problem

# Events whose payload changes the record; every other kind is history only.
FOLDED = {"run_created", "attempt_started", "task_finished", "record_updated", "run_resumed", "run_ended"}


def find_common_dir(path: Path | str) -> Path | None:
    """The common git dir of the checkout at or above `path`, found by its `.git`
    entries alone, or None when that takes more than reading them (no `.git` found,
    a bare repository, an odd layout): the caller then asks git (Workspace)."""
    try:
        here = Path(path).resolve(strict=True)
    except OSError:
        return None
    for d in (here, *here.parents):
        dot = d / ".git"
        try:
            if dot.is_dir():
                gitdir = dot
            elif dot.is_file():
                text = dot.read_text(encoding="utf-8").strip()
                if not text.startswith("gitdir:"):
                    return None
                gitdir = (d / text[len("gitdir:"):].strip()).resolve()
            else:
                continue
            if not (gitdir / "HEAD").is_file():
                return None
            commondir = gitdir / "commondir"
            if commondir.is_file():
                return (gitdir / commondir.read_text(encoding="utf-8").strip()).resolve()
            return gitdir.resolve()
        except (OSError, UnicodeDecodeError):
            return None
    return None


class RunLog:
    """One run's folder (`<common git dir>/harness/runs/<run>/`), read-only."""

    def __init__(self, runs_dir: Path, run_id: str) -> None:
        self.run_id = run_id
        self.dir = runs_dir / run_id

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

    def holder(self) -> dict[str, Any] | None:
        """Who holds the run's writer lock ({pid, host, what, since}), or None."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return read_holder(fd) or {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def load_raw(self) -> dict[str, Any]:
        """The record's JSON form: the snapshot with every later event folded in, and a
        run whose process is gone shown as `interrupted`. Raises UsageError for an
        unknown run and RecordError (one line naming the file) for an unreadable one."""
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
            base, snap_error = None, f"{self.record_path}: unreadable ({short(exc)})"
        after = base.get("seq") if base is not None else 0
        if after is not None:  # None: a record written before the log was the source of truth
            for ev in self.read_events():
                if ev["seq"] > after:
                    try:
                        base = fold(base, ev)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        raise RecordError(f"run {self.run_id!r}: {self.events_path}: malformed event "
                                          f"{ev['seq']} ({type(exc).__name__}: {short(exc)})") from None
        if base is None:
            raise RecordError(f"run {self.run_id!r}: " + (snap_error or f"{self.events_path}: no run_created event"))
        problem = version_problem(base)
        if problem:
            raise RecordError(f"run {self.run_id!r}: {self.record_path}: {problem}")
        if base.get("status") == "running" and self.holder() is None:
            base = {**base, "status": "interrupted"}
        return base

    def read_events(self) -> list[dict[str, Any]]:
        """Every whole event of the log, in order; a line torn by a kill is skipped."""
        try:
            return parse_jsonl(self.events_path.read_bytes())
        except FileNotFoundError:
            return []

    def task_progress(self, task_id: str, run_status: str) -> dict[str, Any]:
        """Where a task without a result stands, from the log: `running` (an attempt
        started and not finished), `pending`, or as the run left it (`interrupted`,
        `cancelled`); with the attempts it finished so far."""
        started: dict[int, dict] = {}
        finished: dict[int, dict] = {}
        for ev in self.read_events():
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


def parse_jsonl(raw: bytes) -> list[dict[str, Any]]:
    """The entries of an append-only log (the run's events, an attempt's model calls):
    each line a JSON object with an integer `seq`, in file order. A line torn by a kill
    mid-write is skipped: the action it announced never happened."""
    out = []
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
            out.append(entry)
    return out


def is_current(raw: dict[str, Any]) -> bool:
    """Whether a raw record is at this harness's schema version, so its JSON form is
    what the views expect; an older one goes through its migration first."""
    return raw.get("schema_version", 1) == SCHEMA_VERSION


def fold(record: dict[str, Any] | None, ev: dict[str, Any]) -> dict[str, Any] | None:
    """The record after one event (the record's JSON form in, and out)."""
    kind, p = ev.get("kind"), ev.get("payload") or {}
    if kind not in FOLDED:
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


class RawEntry:
    """One run as `harness status` lists it: its record's JSON form, or why it is unreadable."""

    def __init__(self, run_id: str, record: dict[str, Any] | None, error: str | None, holder: dict | None) -> None:
        self.run_id = run_id
        self.record = record
        self.error = error
        self.holder = holder


def list_raw(runs_dir: Path) -> list[RawEntry]:
    """Every run under `runs_dir`, oldest first; an unreadable one is listed with why."""
    if not runs_dir.is_dir():
        return []
    entries = []
    for d in runs_dir.iterdir():
        if not d.is_dir():
            continue
        log = RunLog(runs_dir, d.name)
        try:
            entries.append(RawEntry(d.name, log.load_raw(), None, log.holder()))
        except HarnessError as exc:
            entries.append(RawEntry(d.name, None, str(exc), None))
    return sorted(entries, key=lambda e: (_created_key(e.record), e.run_id))


def _created_key(record: dict[str, Any] | None) -> str:
    """Sorts runs by creation time: ISO-8601 UTC stamps compare as strings to the second."""
    created = record.get("created_at") if record else None
    return created[:19] if isinstance(created, str) else ""


def read_holder(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 4096)
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None


def short(exc: BaseException) -> str:
    """The first line of an error, at most 200 characters."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
