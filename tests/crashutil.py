"""Helpers shared by the crash tests of both sandboxes: plans of agents that record
which attempt wrote their file, waiting for them, and what a finished run must hold."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gitutil import git, harness, write_plan
from harness.records import RunRecord, TaskStatus

TASKS = ("a", "b", "c")
QUICK = 'echo "$HARNESS_TASK $HARNESS_ATTEMPT" > $HARNESS_TASK.txt'


def plan_file(tmp_path: Path, run_id: str, *, sandbox: str, command: str, tasks=TASKS,
              parallel: int | None = None) -> Path:
    body = (f'[run]\nsandbox = "{sandbox}"\nid = "{run_id}"\nmax_parallel = {parallel or len(tasks)}\n'
            'timeout_s = 300\n')
    for t in tasks:
        body += f'[[task]]\nid = "{t}"\nprompt = "write {t}"\ncommand = """{command}"""\n'
    return write_plan(tmp_path / f"{run_id}.toml", body)


def wait_for(pred, what: str, timeout: float = 120.0) -> None:
    """A safety net, not a measurement: fail instead of hanging."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def agents_started(repo: Path, run_id: str, tasks=TASKS) -> bool:
    wt = repo / ".git/harness/worktrees" / run_id
    return all((wt / f"{t}.1" / f"{t}.started").exists() for t in tasks)


def load(repo: Path, run_id: str) -> RunRecord:
    proc = harness("show", run_id, "--repo", str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    return RunRecord.model_validate_json(proc.stdout)


def assert_finished_and_consistent(repo: Path, run_id: str, tasks=TASKS, *,
                                   sandbox: str | None = None) -> RunRecord:
    """Every task succeeded, its branch holds the file its last attempt wrote, attempts
    are numbered without gaps, and the repository's objects are sound."""
    record = load(repo, run_id)
    assert record.status == "finished"
    assert set(record.tasks) == set(tasks)
    for t in tasks:
        result = record.tasks[t]
        assert result.status == TaskStatus.succeeded, (t, result.exit_reason)
        assert git(repo, "rev-parse", f"harness/{run_id}/{t}") == result.head_commit
        last = result.attempts[-1]
        if sandbox is not None:
            assert last.sandbox == sandbox
        assert git(repo, "show", f"{result.head_commit}:{t}.txt") == f"{t} {last.number}"
        assert [a.number for a in result.attempts] == list(range(1, len(result.attempts) + 1))
    git(repo, "fsck", "--strict", "--no-progress")
    return record


def marked_processes(repo: Path, run_id: str) -> list[int]:
    """Processes still carrying the run's mark (its harness dir) in their environment."""
    mark = f"HARNESS_DIR={(repo / '.git/harness/runs' / run_id).resolve()}/".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                env = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue
            if any(item.startswith(mark) for item in env.split(b"\0")):
                found.append(int(entry.name))
    return found
