"""The typed handoffs between the harness's parts.

Every record carries `schema_version`. A change of meaning bumps it; readers keep
accepting the older versions (unknown keys are ignored so a newer writer does not
break an older reader either).
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import AgentConfig, CommandAgentConfig, LocalSandboxConfig, SandboxConfig

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TaskStatus(str, Enum):
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    stalled = "stalled"
    crashed = "crashed"
    scope_violation = "scope_violation"
    dependency_failed = "dependency_failed"
    cancelled = "cancelled"
    conflicted = "conflicted"
    rejected_by_gate = "rejected_by_gate"


# --- sandbox -------------------------------------------------------------------------


class SandboxRequest(Model):
    """What an agent asks of a sandbox: one command, in one workspace, bounded."""

    workspace: Path
    """Host path of the attempt's worktree (at /workspace in a container)."""
    harness_dir: Path
    """Host dir with task.json and context/ (at /harness, read-only)."""
    command: list[str]
    """argv, run with the workspace as the current directory."""
    env: dict[str, str] = {}
    timeout_s: float
    log_path: Path
    """stdout and stderr, merged, appended here as they come."""
    labels: dict[str, str] = {}


class SandboxResult(Model):
    """How a sandboxed command ended. A failing command is data, not an exception."""

    exit_code: int | None
    """None when the command was killed before it exited."""
    duration_s: float
    timed_out: bool = False
    reason: str | None = None
    """Why it ended abnormally: "timeout", "oom", "start_failed", "signal N"."""
    output_tail: str = ""
    image_id: str | None = None


# --- tasks and agents ----------------------------------------------------------------


class Budget(Model):
    timeout_s: float
    retries: int = 0
    backoff_s: float = 0.5
    steps: int | None = None


class HunkRange(Model):
    """Lines [start, start + count) of one side (1-based)."""

    start: int
    count: int


class PathConflict(Model):
    path: str
    kind: Literal["content", "add/add", "modify/delete", "rename", "binary"]
    ancestor_id: str | None = None
    ours_id: str | None = None
    theirs_id: str | None = None
    ours_ranges: list[HunkRange] = []
    theirs_ranges: list[HunkRange] = []
    ours_text: str = ""
    theirs_text: str = ""
    base_text: str = ""
    ours_path: str | None = None
    theirs_path: str | None = None


class ConflictRecord(Model):
    """Why an agent's branch did not fold: textual (merge conflict) or semantic
    (a clean merge whose tests fail)."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task_id: str
    conflict_class: Literal["textual", "semantic"] = "textual"
    ours_commit: str
    """The integration so far."""
    theirs_commit: str
    """The agent's head."""
    merge_base: str | None = None
    paths: list[PathConflict] = []
    other_tasks: list[str] = []
    """Tasks whose work the conflict is with, where known."""
    failing_tests: list[str] = []
    detail: str = ""


class TaskSpec(Model):
    """Parent to child: everything an agent gets. Nothing else is shared."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task_id: str
    attempt: int
    prompt: str
    strategy: str | None = None
    context_files: list[str] = []
    """Names of files under $HARNESS_DIR/context/."""
    notes: list[str] = []
    write_scope: list[str] = []
    depends_on: list[str] = []
    budget: Budget
    agent: AgentConfig = CommandAgentConfig()
    sandbox: SandboxConfig = LocalSandboxConfig()
    base_commit: str
    conflict: ConflictRecord | None = None
    """Set when the task is retried after a conflict: redo the work on this base."""
    env: dict[str, str] = {}


class DiffStat(Model):
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    paths: list[str] = []


class FailureInfo(Model):
    kind: str
    message: str


class Attempt(Model):
    number: int
    status: TaskStatus
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime
    ended_at: datetime
    duration_s: float
    base_commit: str
    commit: str | None = None
    ref: str | None = None
    log_path: str
    output_tail: str = ""
    scope_violations: list[str] = []
    tool_trace: list[str] = []
    diff: DiffStat | None = None
    sandbox: str = "local"
    image_id: str | None = None


class AgentResult(Model):
    """Child to parent: how a task ended, with every attempt."""

    schema_version: int = SCHEMA_VERSION
    task_id: str
    status: TaskStatus
    exit_reason: str | None = None
    failure: FailureInfo | None = None
    attempts: list[Attempt] = []
    retries: int = 0
    branch: str | None = None
    head_commit: str | None = None
    base_commit: str | None = None
    strategy: str | None = None
    diff: DiffStat | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


# --- integration and gate ------------------------------------------------------------


class MergeStep(Model):
    task_id: str
    outcome: Literal["folded", "conflicted", "skipped", "retried", "rejected_by_gate", "empty"]
    agent_head: str
    head_before: str
    merge_commit: str | None = None
    tree: str | None = None
    conflict: ConflictRecord | None = None


class MergeReport(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    onto: str
    base_commit: str
    order: Literal["finish", "plan"] = "finish"
    policy: Literal["skip", "retry", "fail"] = "skip"
    branch: str
    head: str
    steps: list[MergeStep] = []
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def folded(self) -> list[str]:
        return [s.task_id for s in self.steps if s.outcome == "folded"]

    @property
    def conflicts(self) -> list[ConflictRecord]:
        return [s.conflict for s in self.steps if s.conflict is not None]


class TestReport(Model):
    __test__ = False  # not a pytest class

    schema_version: int = SCHEMA_VERSION
    commit: str | None = None
    command: str = ""
    source: Literal["junit", "exit_code"] = "exit_code"
    exit_code: int | None = None
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0
    failing: list[str] = []
    flaky: list[str] = []
    duration_s: float = 0.0
    reason: str | None = None
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.errored == 0


class GateRun(Model):
    commit: str
    tasks: list[str]
    """Tasks folded into the tested commit."""
    purpose: str = "gate"
    tests: TestReport


class GateReport(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["green", "red"]
    tested_commit: str | None = None
    """The commit that passed (green) and may be landed."""
    test_cmd: str
    runs: list[GateRun] = []
    culprits: list[str] = []
    flaky: list[str] = []
    landed_ref: str | None = None
    landed_from: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None

    @property
    def test_runs(self) -> int:
        return len(self.runs)


# --- the run -------------------------------------------------------------------------


class RunRecord(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    repo: str
    """The repository's common git dir."""
    plan_path: str | None = None
    plan: dict = {}
    base_ref: str
    base_commit: str
    sandbox: str
    image_id: str | None = None
    max_parallel: int
    status: Literal["running", "finished", "interrupted"] = "running"
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    tasks: dict[str, AgentResult] = {}
    task_order: list[str] = []
    worktrees: list[str] = []
    merge: MergeReport | None = None
    conflicts: list[ConflictRecord] = []
    gate: GateReport | None = None

    @property
    def ok(self) -> bool:
        return bool(self.tasks) and all(r.status == TaskStatus.succeeded for r in self.tasks.values())
