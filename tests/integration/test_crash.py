"""No crash loses work: signals cancel a run and keep every attempt's work; a run
killed with SIGKILL at any point (agents mid-flight, mid-commit, mid-record-write)
is seen as interrupted and `harness resume` finishes it; records survive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crashutil import (QUICK, TASKS, agents_started, assert_finished_and_consistent, load, marked_processes,
                       plan_file, wait_for)
from gitutil import git, harness, make_repo, snapshot, write_plan
from harness.records import RunRecord, TaskStatus

# Attempt 1 leaves work behind and then hangs, so the harness is stopped while it
# runs; any later attempt (after a resume) finishes at once.
AGENT = ('echo "$HARNESS_TASK $HARNESS_ATTEMPT" > $HARNESS_TASK.txt; '
         'if [ "$HARNESS_ATTEMPT" = 1 ]; then touch $HARNESS_TASK.started; sleep 120; '
         'else rm -f $HARNESS_TASK.started; fi')


def _plan(tmp_path: Path, run_id: str, *, sandbox: str = "local", command: str = AGENT,
          tasks=TASKS, parallel: int | None = None) -> Path:
    return plan_file(tmp_path, run_id, sandbox=sandbox, command=command, tasks=tasks, parallel=parallel)


def start(plan: Path, repo: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(plan), "--repo", str(repo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def assert_salvaged(repo: Path, run_id: str, record: RunRecord, tasks=TASKS) -> None:
    """Attempt 1 of each task was stopped mid-flight: its work is on its attempt ref."""
    for t in tasks:
        first = record.tasks[t].attempts[0]
        assert first.number == 1 and first.status == TaskStatus.cancelled, first
        assert first.ref == f"refs/harness/{run_id}/{t}/1" and first.commit
        assert git(repo, "rev-parse", first.ref) == first.commit
        assert git(repo, "show", f"{first.commit}:{t}.txt") == f"{t} 1"


def assert_clean_leaves_nothing(repo: Path, run_id: str) -> None:
    proc = harness("clean", run_id, "--repo", str(repo), "--force")
    assert proc.returncode == 0, proc.stderr
    assert not any((repo / ".git/harness/worktrees" / run_id).glob("*"))
    assert not [w for w in git(repo, "worktree", "list", "--porcelain").splitlines()
                if w.startswith("worktree ") and f"/worktrees/{run_id}/" in w]
    assert not marked_processes(repo, run_id)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_every_agent_keeps_their_work_and_resume_finishes(tmp_path, sig, code):
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    run_id = f"sig{code}"
    proc = start(_plan(tmp_path, run_id), repo)
    wait_for(lambda: agents_started(repo, run_id), "the agents to start")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"harness resume {run_id}" in err
    assert not marked_processes(repo, run_id)  # no agent outlives the cancel
    record = load(repo, run_id)
    assert record.status == "cancelled" and record.cancelled_by == signal.Signals(sig).name
    for t in TASKS:
        assert record.tasks[t].status == TaskStatus.cancelled
    assert_salvaged(repo, run_id, record)
    assert "cancelled" in harness("status", "--repo", str(repo)).stdout

    resumed = harness("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    record = assert_finished_and_consistent(repo, run_id)
    assert_salvaged(repo, run_id, record)
    assert snapshot(repo) == before
    assert_clean_leaves_nothing(repo, run_id)


def test_a_second_ctrl_c_exits_at_once_and_resume_still_finishes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    proc = start(_plan(tmp_path, "twice"), repo)
    wait_for(lambda: agents_started(repo, "twice"), "the agents to start")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    resumed = harness("resume", "twice", "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert_finished_and_consistent(repo, "twice")
    assert_clean_leaves_nothing(repo, "twice")


def test_sigkill_mid_flight_is_interrupted_and_resume_reaps_salvages_and_finishes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc = start(_plan(tmp_path, "k9"), repo)
    wait_for(lambda: agents_started(repo, "k9"), "the agents to start")
    proc.kill()
    proc.wait(timeout=30)
    assert marked_processes(repo, "k9")  # the dead harness left its agents running

    listed = harness("status", "--repo", str(repo))
    assert listed.returncode == 0 and "interrupted" in listed.stdout
    assert load(repo, "k9").status == "interrupted"
    refused = harness("integrate", "k9", "--repo", str(repo))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr

    resumed = harness("resume", "k9", "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert "interrupted" in resumed.stderr
    record = assert_finished_and_consistent(repo, "k9")
    assert_salvaged(repo, "k9", record)
    assert snapshot(repo) == before
    again = harness("resume", "k9", "--repo", str(repo))
    assert again.returncode == 2 and "finished already" in again.stderr
    assert_clean_leaves_nothing(repo, "k9")


@pytest.mark.parametrize("point", ["commit:2", "event:9", "snapshot:1", "snapshot:2"])
def test_sigkill_at_a_failpoint_then_resume_finishes(tmp_path, point):
    """Killed while committing an attempt, while appending an event (a torn line), or
    while writing a record snapshot: nothing is lost and resume ends the run."""
    repo = make_repo(tmp_path / "repo")
    run_id = "fp" + point.replace(":", "")
    plan = _plan(tmp_path, run_id, command=QUICK, parallel=1)
    proc = start(plan, repo, env={"HARNESS_FAILPOINTS": point})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    listed = harness("status", "--repo", str(repo))
    assert listed.returncode == 0, listed.stderr
    if point == "snapshot:2":
        # killed writing the last snapshot: the log already says the run ended
        assert "finished" in listed.stdout
        record = load(repo, run_id)
    else:
        assert "interrupted" in listed.stdout
        resumed = harness("resume", run_id, "--repo", str(repo))
        assert resumed.returncode == 0, resumed.stderr
        record = load(repo, run_id)
    assert_finished_and_consistent(repo, run_id)
    if point == "commit:2":
        # the second task's attempt was committed but its ref never written: resume
        # commits the same work again and points the attempt ref at it
        first = [r for r in record.tasks.values() if r.attempts[0].status == TaskStatus.cancelled]
        assert len(first) == 1 and first[0].attempts[0].ref and first[0].attempts[0].commit
    assert_clean_leaves_nothing(repo, run_id)


def test_records_survive_a_torn_snapshot_and_an_unreadable_run_is_one_line(tmp_path):
    repo = make_repo(tmp_path / "repo")
    for run_id in ("good", "bad"):
        proc = harness("run", str(_plan(tmp_path, run_id, command=QUICK)), "--repo", str(repo))
        assert proc.returncode == 0, proc.stderr
    runs = repo / ".git/harness/runs"
    # a record cut short: rebuilt from the log
    text = (runs / "good/record.json").read_text()
    (runs / "good/record.json").write_text(text[: len(text) // 3])
    assert load(repo, "good").status == "finished"
    # both record and log gone bad: one line naming the file, and the others still listed
    (runs / "bad/record.json").write_text("{\"run_id\": ")
    (runs / "bad/events.jsonl").write_text("not json\n")
    for args in (("show", "bad"), ("integrate", "bad"), ("gate", "bad", "--test-cmd", "true"),
                 ("conflicts", "bad")):
        proc = harness(*args, "--repo", str(repo))
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "record.json" in proc.stderr, (args, proc.stderr)
    listed = harness("status", "--repo", str(repo))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "unreadable" in rows["bad"] and "finished" in rows["good"]
    assert harness("clean", "bad", "--repo", str(repo)).returncode == 0


def test_integrate_during_a_live_run_is_refused_with_one_line(tmp_path):
    repo = make_repo(tmp_path / "repo")
    proc = start(_plan(tmp_path, "live", tasks=("a",)), repo)
    try:
        wait_for(lambda: agents_started(repo, "live", ("a",)), "the agent to start")
        listed = harness("status", "--repo", str(repo))
        assert "running (pid" in listed.stdout
        for args in (("integrate", "live"), ("clean", "live"), ("resume", "live")):
            refused = harness(*args, "--repo", str(repo))
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.count("\n") == 1 and "is busy" in refused.stderr and "pid" in refused.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143


def test_store_io_is_linear_in_events(tmp_path):
    """The record is snapshotted a fixed number of times, not once per task."""
    repo = make_repo(tmp_path / "repo")
    tasks = tuple(f"t{i}" for i in range(12))
    plan = _plan(tmp_path, "lin", command=QUICK, tasks=tasks)
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    events = [json.loads(line) for line in (repo / ".git/harness/runs/lin/events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("task_finished") == 12 and kinds.count("attempt_finished") == 12
    record = load(repo, "lin")
    assert record.seq == events[-1]["seq"]  # the last snapshot reflects every event


def test_an_exception_in_one_task_crashes_only_that_task(tmp_path, monkeypatch):
    from harness.run.lifecycle import run_plan
    from harness.repo.workspace import Workspace

    repo = make_repo(tmp_path / "repo")
    real = Workspace.create_worktree

    def flaky(self, name, path, commit_id):
        if "+boom." in name:
            raise RuntimeError("disk on fire")
        return real(self, name, path, commit_id)

    monkeypatch.setattr(Workspace, "create_worktree", flaky)
    plan = _plan(tmp_path, "iso", command=QUICK, tasks=("ok1", "boom", "ok2"))
    record = run_plan(plan, repo)
    assert record.status == "finished"
    assert record.tasks["ok1"].status == record.tasks["ok2"].status == TaskStatus.succeeded
    boom = record.tasks["boom"]
    assert boom.status == TaskStatus.crashed and "disk on fire" in boom.exit_reason
    crash_log = repo / ".git/harness/runs/iso/tasks/boom/crash.log"
    assert "Traceback" in crash_log.read_text() and "RuntimeError: disk on fire" in crash_log.read_text()


def test_succeeded_worktrees_go_failed_ones_stay(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "p.toml", '[run]\nsandbox = "local"\nid = "kw"\n'
                      '[[task]]\nid = "good"\ncommand = "echo x > x.txt"\n'
                      '[[task]]\nid = "bad"\ncommand = "echo y > y.txt; exit 3"\n')
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 1
    wt = repo / ".git/harness/worktrees/kw"
    assert not (wt / "good.1").exists() and (wt / "bad.1/y.txt").exists()
    assert git(repo, "show", "harness/kw/good:x.txt") == "x"
    assert git(repo, "show", "refs/harness/kw/bad/1:y.txt") == "y"
    assert "good.1" not in git(repo, "worktree", "list")
