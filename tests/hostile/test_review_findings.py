"""Defects found by a hostile review of the event-sourced store, signals/resume,
git safety and bounded output. Each test is a minimal reproduction through the real
CLI; they fail until the defect is fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


from gitutil import git, make_repo, write_plan
from harness.records import RunRecord


def one_task_plan(path: Path, task_id: str, command: str, **run) -> Path:
    """A plan of one local task on `main`; `run` adds [run] settings."""
    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in run.items())
    return write_plan(path, f'[run]\nbase = "main"\nsandbox = "local"\n{settings}'
                            f'[[task]]\nid = "{task_id}"\nprompt = "p"\ncommand = {json.dumps(command)}\n')


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def record(repo: Path, run_id: str) -> RunRecord:
    proc = cli("show", run_id, "--repo", str(repo), "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return RunRecord.model_validate_json(proc.stdout)


def events(repo: Path, run_id: str) -> list[dict]:
    path = repo / ".git" / "harness" / "runs" / run_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- 1. resume reruns a task whose attempt had already succeeded ---------------------

def test_resume_keeps_a_task_whose_attempt_succeeded_before_the_kill(tmp_path):
    """Killed after `attempt_finished` (succeeded, branch already set) but before
    `task_finished`: resume must not run the task again, and must not end it failed."""
    repo = make_repo(tmp_path / "repo")
    flag = tmp_path / "second-time"
    plan = one_task_plan(tmp_path / "plan.toml", "t1",
                         f"if [ -e {flag} ]; then exit 3; fi; touch {flag}; echo x > b.txt",
                         timeout_s=60, retries=0)
    # events: run_created, run_started, attempt_started, attempt_finished, task_finished(5)
    proc = cli("run", str(plan), "--repo", str(repo), "--run-id", "r", env={"HARNESS_FAILPOINTS": "event:5"})
    assert proc.returncode == -9 or proc.returncode == 137, proc.stderr
    assert git(repo, "rev-parse", "--verify", "refs/heads/harness/r/t1")  # the branch was set
    proc = cli("resume", "r", "--repo", str(repo))
    assert "Traceback" not in proc.stderr
    rec = record(repo, "r")
    assert rec.tasks["t1"].status.value == "succeeded", rec.tasks["t1"].exit_reason
    assert len(rec.tasks["t1"].attempts) == 1  # the finished attempt was not run again
    assert proc.returncode == 0


# --- 2. one malformed event line breaks `harness status` for every run --------------

def test_status_survives_a_run_whose_event_log_is_malformed(tmp_path):
    """A well-formed JSON line of the wrong shape (an agent in the local sandbox can
    write there; so can a bad disk) must make that one run unreadable, not crash
    `status` (listing every run) or `show` with a traceback."""
    repo = make_repo(tmp_path / "repo")
    runs = repo / ".git" / "harness" / "runs"
    for name, line in [("noplayload", {"seq": 1, "kind": "run_created", "payload": {}}),
                       ("intrecord", {"seq": 1, "kind": "run_created", "payload": {"record": 5}})]:
        (runs / name).mkdir(parents=True)
        (runs / name / "events.jsonl").write_text(json.dumps(line) + "\n")
    proc = cli("status", "--repo", str(repo))
    assert "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert proc.returncode == 0
    proc = cli("show", "noplayload", "--repo", str(repo))
    assert "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert len(proc.stderr.strip().splitlines()) == 1


# --- 3. resume re-reads strategy and context files from disk -------------------------

def _strategy_run(tmp_path: Path, command: str) -> tuple[Path, Path]:
    repo = make_repo(tmp_path / "repo")
    plans = tmp_path / "plans"
    (plans / "strategies").mkdir(parents=True)
    (plans / "strategies" / "s.toml").write_text(
        f'name = "s"\nprompt = "p"\ncommand = """{command}"""\nfiles = ["notes.md"]\n')
    (plans / "strategies" / "notes.md").write_text("notes\n")
    plan = write_plan(plans / "plan.toml", '''
        [run]
        base = "main"
        sandbox = "local"
        timeout_s = 60
        [[task]]
        id = "a"
        strategy = "strategies/s.toml"
        ''')
    return repo, plan


def _kill_once_started(plan: Path, repo: Path, run_id: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(plan), "--repo", str(repo),
                             "--run-id", run_id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wt = repo / ".git" / "harness" / "worktrees" / run_id / "a.1" / "started"
    deadline = time.monotonic() + 60
    while not wt.exists():
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait()


def test_resume_runs_the_strategy_that_was_recorded_not_the_edited_file(tmp_path):
    repo, plan = _strategy_run(tmp_path, "touch started; echo ORIGINAL > out.txt; sleep 30")
    _kill_once_started(plan, repo, "r")
    (plan.parent / "strategies" / "s.toml").write_text(
        'name = "s"\nprompt = "p"\ncommand = "echo EDITED > out.txt"\nfiles = ["notes.md"]\n')
    proc = cli("resume", "r", "--repo", str(repo))
    assert "Traceback" not in proc.stderr
    rec = record(repo, "r")
    # the resumed attempt must run what the run was started with
    assert rec.tasks["a"].attempts[-1].commit is None or \
        git(repo, "show", f"{rec.tasks['a'].attempts[-1].commit}:out.txt") != "EDITED"


def test_resume_of_a_run_whose_strategy_file_was_deleted_still_finishes(tmp_path):
    repo, plan = _strategy_run(tmp_path, "touch started; echo ORIGINAL > out.txt; sleep 30")
    _kill_once_started(plan, repo, "r")
    import shutil
    shutil.rmtree(plan.parent)
    proc = cli("resume", "r", "--repo", str(repo))
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 1), proc.stderr  # not refused as bad input: the run is recorded
    assert record(repo, "r").status == "finished"


# --- 4. a worktree the harness cannot delete is reported removed ---------------------

def test_clean_does_not_claim_to_remove_a_worktree_it_could_not_delete(tmp_path):
    """The agent makes part of its checkout undeletable (as a non-root user
    `chmod -R a-w .` is enough, in either sandbox; as root, `chattr +i`).
    `remove_worktree` swallows the error (rmtree ignore_errors): keep_worktrees =
    "none" leaves the checkout behind, and `clean --force` says it removed it and
    exits 0 while it is still there."""
    lock = "chattr +i d" if os.geteuid() == 0 else "chmod -R a-w ."
    repo = make_repo(tmp_path / "repo")
    plan = one_task_plan(tmp_path / "plan.toml", "ro", f"mkdir d && echo x > d/f && {lock}", keep_worktrees="none")
    wt = repo / ".git" / "harness" / "worktrees" / "r" / "ro.1"
    try:
        assert cli("run", str(plan), "--repo", str(repo), "--run-id", "r").returncode == 0
        proc = cli("clean", "r", "--repo", str(repo), "--force")
        assert not wt.exists() or proc.returncode != 0, (
            f"clean said {proc.stdout.strip()!r} (exit {proc.returncode}) but {wt} is still there")
    finally:
        if wt.exists():
            subprocess.run(["chattr", "-R", "-i", str(wt)], capture_output=True)
            subprocess.run(["chmod", "-R", "u+w", str(wt)], capture_output=True)


# --- 5. a worktree swapped for a symlink: the harness follows it ---------------------

def test_a_worktree_replaced_by_a_symlink_is_not_followed(tmp_path):
    """An agent (local sandbox) replaces its checkout with a symlink to another
    repository. `restore_gitfile` follows it and rmtree's that repository's `.git`
    directory, then `commit_worktree` commits the other repository's files as the
    task's work, and the task reads `succeeded`."""
    repo = make_repo(tmp_path / "repo")
    victim = make_repo(tmp_path / "victim", {"precious.txt": "history\n"})
    victim_head = git(victim, "rev-parse", "HEAD")
    plan = one_task_plan(tmp_path / "plan.toml", "swap",
                         f'cd .. && rm -rf "$HARNESS_WORKSPACE" && ln -s {victim} "$HARNESS_WORKSPACE"')
    proc = cli("run", str(plan), "--repo", str(repo), "--run-id", "r")
    assert "Traceback" not in proc.stderr
    assert (victim / ".git").is_dir(), "the harness deleted another repository's .git"
    assert git(victim, "rev-parse", "HEAD") == victim_head
    assert record(repo, "r").tasks["swap"].status.value != "succeeded"


# --- 6. a sparse file: a few bytes of disk for the agent, gigabytes for the harness --

def test_a_huge_sparse_file_does_not_become_a_huge_blob_past_the_time_limit(tmp_path):
    """`truncate -s 2G big.bin` costs the agent nothing (sparse, no disk, well within
    its timeout), but the host-side commit reads and deflates every byte into the
    user's object store, outside the attempt's timeout (about 10 s per GiB here;
    `truncate -s 1T` is hours and gigabytes of .git/objects, and a checkout of that
    branch writes a terabyte). Nothing bounds the size of a committed file."""
    repo = make_repo(tmp_path / "repo")
    plan = one_task_plan(tmp_path / "plan.toml", "sparse", "truncate -s 2G big.bin", timeout_s=5)
    proc = cli("run", str(plan), "--repo", str(repo), "--run-id", "r")
    assert "Traceback" not in proc.stderr
    attempt = record(repo, "r").tasks["sparse"].attempts[-1]
    assert attempt.commit is None or "big.bin" not in git(repo, "ls-tree", "-r", "--name-only", attempt.commit)
    assert "left out of the commit" in attempt.reason and "big.bin" in attempt.reason, attempt.reason


# --- 7. `harness show RUN TASK` on a live run: a running task is "bad input" ---------

def test_show_a_task_of_a_live_run_that_is_still_running(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = one_task_plan(tmp_path / "plan.toml", "slow", "touch started; sleep 30")
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(plan), "--repo", str(repo),
                             "--run-id", "r"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = repo / ".git" / "harness" / "worktrees" / "r" / "slow.1" / "started"
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        shown = cli("show", "r", "slow", "--repo", str(repo))
        assert shown.returncode == 0, shown.stderr  # today: "run 'r' has no task 'slow'", exit 2
        assert shown.stdout.startswith("task slow of run r: running"), shown.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# --- 8. worktree names collide across runs: harness-<run>-<task>-<n> -----------------

def _two_runs(tmp_path: Path) -> Path:
    """Run `a` task `b-c` and run `a-b` task `c` share the worktree name harness-a-b-c-1."""
    repo = make_repo(tmp_path / "repo")
    for run_id, tid, cmd in [("a", "b-c", "echo mine > mine.txt; exit 1"), ("a-b", "c", "echo one > one.txt")]:
        plan = one_task_plan(tmp_path / f"{run_id}.toml", tid, cmd)
        cli("run", str(plan), "--repo", str(repo), "--run-id", run_id)
    return repo


def test_a_task_of_one_run_does_not_crash_on_another_runs_worktree(tmp_path):
    repo = _two_runs(tmp_path)
    status = record(repo, "a-b").tasks["c"].status.value
    assert status == "succeeded", record(repo, "a-b").tasks["c"].exit_reason


def test_clean_of_one_run_leaves_another_runs_worktrees_alone(tmp_path):
    repo = _two_runs(tmp_path)
    kept = repo / ".git" / "harness" / "worktrees" / "a" / "b-c.1"  # failed: kept for a person
    assert kept.is_dir()
    before = git(repo, "worktree", "list", "--porcelain")
    cli("clean", "a-b", "--repo", str(repo))
    assert git(repo, "worktree", "list", "--porcelain") == before  # run a's worktree still known to git
    assert subprocess.run(["git", "-C", str(kept), "status"], capture_output=True).returncode == 0


# --- 9. clean deletes the user's own linked worktree named harness-<run>-* -----------

def test_clean_never_touches_a_users_own_worktree_named_like_the_run(tmp_path):
    """A user reviews a run's branch the ordinary git way: `git worktree add
    ../harness-r-review harness/r/t`. git names its metadata dir
    `.git/worktrees/harness-r-review`, which `clean r` takes for one of its own (by
    the prefix `harness-r-`) and deletes: the user's worktree is no longer a git
    checkout (its HEAD and index are gone)."""
    repo = make_repo(tmp_path / "repo")
    plan = one_task_plan(tmp_path / "plan.toml", "t", "echo x > x.txt")
    assert cli("run", str(plan), "--repo", str(repo), "--run-id", "r").returncode == 0
    review = tmp_path / "harness-r-review"
    git(repo, "worktree", "add", "-q", str(review), "harness/r/t")
    (review / "staged.txt").write_text("mine\n")
    git(review, "add", "staged.txt")
    before = (git(review, "rev-parse", "HEAD"), git(review, "status", "--porcelain"))
    proc = cli("clean", "r", "--repo", str(repo))
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run(["git", "-C", str(review), "status"], capture_output=True).returncode == 0, \
        "the user's worktree is no longer a git checkout"
    assert (git(review, "rev-parse", "HEAD"), git(review, "status", "--porcelain")) == before
