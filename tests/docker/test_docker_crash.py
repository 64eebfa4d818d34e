"""No crash loses work, with the docker sandbox: a signal stops every container of
the run and keeps each attempt's work; a run killed with SIGKILL (its containers
still running, or at a failpoint) is seen as interrupted and `harness resume` reaps
and finishes it; a Docker daemon that goes away mid-run crashes the attempts with
one clear line, and resume re-runs them once the daemon is back. The last one runs
against a private dockerd, so the shared daemon other tests use is never touched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dockerd import PrivateDockerd
from crashutil import (QUICK, TASKS, agents_started, assert_finished_and_consistent, load, plan_file,
                       wait_for)
from gitutil import git, make_repo, snapshot
from harness.records import RunRecord, TaskStatus

IMAGE = "harness/python:latest"

# Attempt 1 leaves work behind and then hangs, so the harness (or its daemon) is
# stopped while it runs; any later attempt finishes at once. The trap lets a
# restarted daemon stop a container it restores without waiting out its grace period.
AGENT = ('trap "exit 143" TERM; echo "$HARNESS_TASK $HARNESS_ATTEMPT" > $HARNESS_TASK.txt; '
         'if [ "$HARNESS_ATTEMPT" = 1 ]; then touch $HARNESS_TASK.started; sleep 120 & wait $!; '
         'else rm -f $HARNESS_TASK.started; fi')


# --- helpers ---------------------------------------------------------------------------

def _plan(tmp_path: Path, run_id: str, *, command: str = AGENT, tasks=TASKS,
          parallel: int | None = None) -> Path:
    return plan_file(tmp_path, run_id, sandbox="docker", command=command, tasks=tasks, parallel=parallel)


def _env(docker_host: str | None) -> dict:
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def start(plan: Path, repo: Path, *, docker_host: str | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", str(plan), "--repo", str(repo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**_env(docker_host), **(env or {})})


def cli(*args: str, docker_host: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=300, env=_env(docker_host))


def containers(client, run_id: str, **filters) -> list:
    """Every container of the run the daemon knows, running or not, by label."""
    return client.containers.list(all=True, filters={"label": f"harness.run={run_id}", **filters})


def wait_running(client, run_id: str, n: int) -> set[str]:
    """The ids of the run's n running containers, once the daemon says so: an agent
    can write its first file before the daemon has marked its container running."""
    wait_for(lambda: len(containers(client, run_id, status="running")) == n, f"{n} running containers")
    return {c.id for c in containers(client, run_id, status="running")}


def assert_first_attempt_kept(repo: Path, run_id: str, record: RunRecord, status: TaskStatus,
                              tasks=TASKS) -> None:
    """Attempt 1 of each task was stopped mid-flight: its work is on its attempt ref."""
    for t in tasks:
        first = record.tasks[t].attempts[0]
        assert first.number == 1 and first.status == status, first
        assert first.ref == f"refs/harness/{run_id}/{t}/1" and first.commit
        assert git(repo, "rev-parse", first.ref) == first.commit
        assert git(repo, "show", f"{first.commit}:{t}.txt") == f"{t} 1"


def assert_clean_leaves_nothing(repo: Path, run_id: str, client, docker_host: str | None = None) -> None:
    proc = cli("clean", run_id, "--repo", str(repo), "--force", docker_host=docker_host)
    assert proc.returncode == 0, proc.stderr
    assert not any((repo / ".git/harness/worktrees" / run_id).glob("*"))
    assert not [w for w in git(repo, "worktree", "list", "--porcelain").splitlines()
                if w.startswith("worktree ") and f"/worktrees/{run_id}/" in w]
    assert containers(client, run_id) == []


# --- the shared daemon -------------------------------------------------------------------

def test_sigterm_stops_every_container_keeps_the_work_and_resume_finishes(docker_daemon, run_id, tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc = start(_plan(tmp_path, run_id), repo)
    wait_for(lambda: agents_started(repo, run_id), "the agents to start")
    wait_running(docker_daemon, run_id, len(TASKS))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and f"harness resume {run_id}" in err
    assert containers(docker_daemon, run_id) == []  # stopped, and removed too
    record = load(repo, run_id)
    assert record.status == "cancelled" and record.cancelled_by == "SIGTERM"
    assert all(record.tasks[t].status == TaskStatus.cancelled for t in TASKS)
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.cancelled)

    resumed = cli("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    record = assert_finished_and_consistent(repo, run_id, sandbox="docker")
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.cancelled)
    assert containers(docker_daemon, run_id) == []
    assert snapshot(repo) == before
    assert_clean_leaves_nothing(repo, run_id, docker_daemon)


def test_sigkill_leaves_containers_running_and_resume_reaps_salvages_and_finishes(docker_daemon, run_id,
                                                                                  tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc = start(_plan(tmp_path, run_id), repo)
    wait_for(lambda: agents_started(repo, run_id), "the agents to start")
    running = wait_running(docker_daemon, run_id, len(TASKS))
    proc.kill()
    proc.communicate(timeout=30)
    # the dead harness left its containers running
    assert {c.id for c in containers(docker_daemon, run_id, status="running")} == running

    listed = cli("status", "--repo", str(repo))
    assert listed.returncode == 0 and run_id in listed.stdout
    assert "interrupted" in next(line for line in listed.stdout.splitlines() if run_id in line)
    assert load(repo, run_id).status == "interrupted"

    resumed = cli("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    assert f"stopped {len(TASKS)} sandbox(es)" in resumed.stderr
    assert containers(docker_daemon, run_id) == []  # the old ones reaped, the new ones removed
    record = assert_finished_and_consistent(repo, run_id, sandbox="docker")
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.cancelled)
    assert snapshot(repo) == before
    assert_clean_leaves_nothing(repo, run_id, docker_daemon)


def test_sigkill_at_the_first_commit_then_resume_keeps_that_attempt(docker_daemon, run_id, tmp_path):
    repo = make_repo(tmp_path / "repo")
    tasks = ("a", "b")
    proc = start(_plan(tmp_path, run_id, command=QUICK, tasks=tasks, parallel=1), repo,
                 env={"HARNESS_FAILPOINTS": "commit:1"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert load(repo, run_id).status == "interrupted"
    # the attempt was committed but its ref never written
    assert not git(repo, "for-each-ref", f"refs/harness/{run_id}/")

    resumed = cli("resume", run_id, "--repo", str(repo))
    assert resumed.returncode == 0, resumed.stderr
    record = assert_finished_and_consistent(repo, run_id, tasks, sandbox="docker")
    killed = [t for t in tasks if record.tasks[t].attempts[0].status == TaskStatus.cancelled]
    assert len(killed) == 1, {t: record.tasks[t].attempts for t in tasks}
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.cancelled, killed)
    assert [a.number for a in record.tasks[killed[0]].attempts] == [1, 2]
    assert containers(docker_daemon, run_id) == []
    assert_clean_leaves_nothing(repo, run_id, docker_daemon)


# --- a private daemon, lost mid-run --------------------------------------------------------

@pytest.fixture
def private_dockerd(docker_daemon):
    """A private dockerd holding the sandbox image; always stopped and removed."""
    missing = [tool for tool in ("dockerd", "docker", "umount") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"a private dockerd needs root and {', '.join(missing) or 'its tools'}")
    # short: a unix socket path under the exec root must stay within 107 bytes
    daemon = PrivateDockerd(Path(tempfile.mkdtemp(prefix="hd", dir="/tmp")))
    try:
        daemon.start()
        daemon.load_image(IMAGE)
        yield daemon
    finally:
        daemon.destroy()


def test_a_lost_daemon_crashes_the_attempts_with_one_line_and_resume_reruns_them(private_dockerd, run_id,
                                                                                 tmp_path):
    tasks = ("a", "b")
    host = private_dockerd.url
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc = start(_plan(tmp_path, run_id, tasks=tasks), repo, docker_host=host)
    try:
        wait_for(lambda: agents_started(repo, run_id, tasks), "the agents to start")
        wait_running(private_dockerd.client(), run_id, len(tasks))
        private_dockerd.kill()
        # the safety net is far below the attempts' own 300 s timeout
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "lost the Docker daemon" in line]
    assert sorted(line.split(":", 1)[0].split()[-1] for line in lines) == list(tasks), err
    record = load(repo, run_id)
    assert record.status == "finished" and not record.ok
    for t in tasks:
        result = record.tasks[t]
        assert result.status == TaskStatus.crashed, result
        assert "lost the Docker daemon while harness-" in result.exit_reason
        assert len(result.attempts) == 1
        log = Path(result.attempts[0].log_path).read_text()
        assert "lost the Docker daemon" in log
    # the work of an attempt whose daemon went away is kept too
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.crashed, tasks)

    private_dockerd.start()
    resumed = cli("resume", run_id, "--repo", str(repo), docker_host=host)
    assert resumed.returncode == 0, resumed.stderr
    record = assert_finished_and_consistent(repo, run_id, tasks, sandbox="docker")
    assert_first_attempt_kept(repo, run_id, record, TaskStatus.crashed, tasks)
    assert all([a.number for a in record.tasks[t].attempts] == [1, 2] for t in tasks)
    client = private_dockerd.client()
    assert containers(client, run_id) == []  # the restored old ones and the new ones alike
    again = cli("resume", run_id, "--repo", str(repo), docker_host=host)
    assert again.returncode == 2 and "finished already" in again.stderr
    assert snapshot(repo) == before
    assert_clean_leaves_nothing(repo, run_id, client, docker_host=host)
