"""The scheduler with an in-process fake agent: ordering, dependencies, retries and
cancellation, on a real git repository, with no sandbox process at all."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

from gitutil import make_repo, write_plan
from harness.records import SandboxResult, TaskStatus
from harness.run.lifecycle import prepare_run
from harness.run.scheduler import Orchestrator


class FakeAgent:
    """Does each task in-process: writes `<task>.txt` in its worktree, or fails the
    attempts listed in `fail`, or blocks until released when listed in `block`."""

    name = "fake"

    def __init__(self, fail: dict[str, int] | None = None, block: set[str] | None = None) -> None:
        self.fail = dict(fail or {})
        self.block = set(block or ())
        self.started: list[tuple[str, int]] = []
        self.running = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def run(self, spec, sandbox, workspace: Path, harness_dir: Path, log_path: Path) -> SandboxResult:
        with self._lock:
            self.started.append((spec.task_id, spec.attempt))
        log_path.write_text(f"fake {spec.task_id} {spec.attempt}\n")
        if spec.task_id in self.block:
            self.running.set()
            self.release.wait(5)
            return SandboxResult(exit_code=None, duration_s=0.0, reason="cancelled")
        if spec.attempt <= self.fail.get(spec.task_id, 0):
            return SandboxResult(exit_code=1, duration_s=0.0)
        seen = sorted(p.name for p in workspace.glob("*.txt"))
        (workspace / f"{spec.task_id}.txt").write_text(f"{spec.task_id} saw {seen}\n")
        return SandboxResult(exit_code=0, duration_s=0.0)


def _orchestrator(tmp_path: Path, body: str, agent: FakeAgent) -> Orchestrator:
    repo = make_repo(tmp_path / "repo")
    body = textwrap.dedent(body).replace("[[task]]\n", '[[task]]\ncommand = "unused: the fake agent runs in-process"\n')
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\nbackoff_s = 0\n' + body)
    ws, store, resolved, record, _ = prepare_run(plan, repo, run_id="fake")
    store.reserve()
    store.create(record)
    return Orchestrator(ws, store, resolved, record, agent_for=lambda config: agent)


def test_dependencies_run_in_order_and_see_their_parents_work(tmp_path):
    agent = FakeAgent()
    orch = _orchestrator(tmp_path, """
        max_parallel = 4
        [[task]]
        id = "c"
        depends_on = ["a", "b"]
        [[task]]
        id = "a"
        [[task]]
        id = "b"
        depends_on = ["a"]
    """, agent)
    with orch.store.writer("run"):
        record = orch.run()
    assert record.status == "finished" and record.ok
    assert [t for t, _ in agent.started] == ["a", "b", "c"]
    assert all(r.status == TaskStatus.succeeded for r in record.tasks.values())
    c_head = record.tasks["c"].head_commit
    text = orch.ws.repo().revparse_single(f"{c_head}:c.txt").data.decode()
    assert text == "c saw ['a.txt', 'b.txt']\n"


def test_a_failed_dependency_stops_its_dependents(tmp_path):
    agent = FakeAgent(fail={"a": 99})
    orch = _orchestrator(tmp_path, """
        [[task]]
        id = "a"
        [[task]]
        id = "b"
        depends_on = ["a"]
        [[task]]
        id = "free"
    """, agent)
    with orch.store.writer("run"):
        record = orch.run()
    assert record.tasks["a"].status == TaskStatus.failed
    assert record.tasks["b"].status == TaskStatus.dependency_failed
    assert record.tasks["free"].status == TaskStatus.succeeded
    assert ("b", 1) not in agent.started


def test_retries_until_an_attempt_succeeds(tmp_path):
    agent = FakeAgent(fail={"flaky": 2})
    orch = _orchestrator(tmp_path, """
        [[task]]
        id = "flaky"
        retries = 3
    """, agent)
    with orch.store.writer("run"):
        record = orch.run()
    result = record.tasks["flaky"]
    assert result.status == TaskStatus.succeeded
    assert [a.status for a in result.attempts] == [TaskStatus.failed, TaskStatus.failed, TaskStatus.succeeded]
    assert result.retries == 2
    assert agent.started == [("flaky", 1), ("flaky", 2), ("flaky", 3)]


def test_cancel_stops_the_run_and_starts_nothing_new(tmp_path):
    agent = FakeAgent(block={"slow"})
    orch = _orchestrator(tmp_path, """
        max_parallel = 1
        [[task]]
        id = "slow"
        [[task]]
        id = "later"
    """, agent)

    def cancel_when_running() -> None:
        agent.running.wait(5)
        orch.cancel("SIGTERM")
        agent.release.set()

    helper = threading.Thread(target=cancel_when_running)
    helper.start()
    with orch.store.writer("run"):
        record = orch.run()
    helper.join()
    assert record.status == "cancelled" and record.cancelled_by == "SIGTERM"
    assert record.tasks["slow"].status == TaskStatus.cancelled
    assert record.tasks["later"].status == TaskStatus.cancelled
    assert agent.started == [("slow", 1)]
