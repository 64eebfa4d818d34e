"""The typed handoffs between the harness's parts.

Every record follows the one versioning policy of versioning.py: readers accept
unknown keys (`extra="ignore"` below), and a change of meaning bumps
`schema_version` with a migration.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import AgentConfig, CommandAgentConfig, LocalSandboxConfig, SandboxConfig
from .versioning import SCHEMA_VERSION


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the versioning policy: see the module docstring


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
    over_budget = "over_budget"
    """The run's model gateway refused the attempt's calls past a token or cost budget."""
    upstream_unavailable = "upstream_unavailable"
    """The attempt's model upstream stopped answering (every retry failed, or its circuit is open)."""


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
    stall_s: float | None = None
    """Stop the command when it prints nothing for this long (reason "stalled")."""
    max_steps: int | None = None
    """Stop the command when it announces more steps than this (reason "steps")."""
    max_log_bytes: int | None = None
    """Most output bytes written to log_path; the rest is counted and named in one
    marker line at the end. None: the sandbox's default (64 MiB)."""
    model_network: str | None = None
    """The run's model network the sandbox joins instead of its configured network
    (`Sandbox.open_model_route`); None: the configured one."""


class SandboxResult(Model):
    """How a sandboxed command ended. A failing command is data, not an exception."""

    exit_code: int | None
    """None when the command was killed before it exited."""
    duration_s: float
    timed_out: bool = False
    reason: str | None = None
    """Why it ended abnormally: "timeout", "stalled", "steps", "oom", "start_failed",
    "signal N"."""
    output_tail: str = ""
    image_id: str | None = None
    steps: int = 0
    """Lines the command printed starting with ::harness-step:: (its steps)."""
    trace: list[str] = []
    """What those lines said, in order (the first 1000)."""


# --- tasks and agents ----------------------------------------------------------------


class Budget(Model):
    timeout_s: float
    retries: int = 0
    backoff_s: float = 0.5
    steps: int | None = None
    """Most steps an attempt may announce (::harness-step:: lines); None: no limit."""
    stall_s: float | None = None
    """An attempt that prints nothing for this long is stopped as stalled."""
    log_bytes: int | None = None
    """Most bytes of output kept in the attempt's log; None: the sandbox's default."""


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
    ancestor_path: str | None = None
    """Where the file was in the merge base (differs from `path` for renames)."""
    detail: str = ""
    """The finer case: "rename/rename (1to2)", "rename/delete", "rename/modify",
    "rename/rename (2to1)", "rename/add", "delete/modify"..."""


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
    """Textual: the tasks whose work changed the conflicting lines, where known.
    Semantic: every task folded before it when the tests failed (the context; the
    ones it actually clashes with are `partners`)."""
    failing_tests: list[str] = []
    detail: str = ""
    unrelated: bool = False
    """The two histories share no commit: refused before merging, as git refuses."""
    not_attempted: list[str] = []
    """What git's own merge would have done here that this merge cannot (directory
    rename detection), each with the paths it concerns; such a merge is reported
    as a conflict instead of a tree that silently differs from git's."""
    partners: list[str] = []
    """Semantic: the smallest set of earlier tasks found that it fails with (folded
    onto the base with just these, the tests fail; without any one of them they
    pass). Empty when not searched (textual, or a record older than the search)."""
    partner_runs: int = 0
    """Semantic: the test runs the partner search took (the gate's "partners" runs)."""


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


class ModelSpend(Model):
    """What an attempt, a task or a run spent on model calls through the run's gateway."""

    calls: int = 0
    """Calls an upstream answered (retries not counted)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    refused: int = 0
    """Calls the gateway refused (over budget, upstream unavailable)."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def total(cls, spends: Iterable[ModelSpend | None]) -> ModelSpend | None:
        """The spends added up; None when there is none (no model was used)."""
        parts = [s for s in spends if s is not None]
        return sum(parts[1:], parts[0]) if parts else None

    def __add__(self, other: ModelSpend) -> ModelSpend:
        return ModelSpend(calls=self.calls + other.calls, input_tokens=self.input_tokens + other.input_tokens,
                          output_tokens=self.output_tokens + other.output_tokens,
                          cost_usd=self.cost_usd + other.cost_usd, refused=self.refused + other.refused)


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
    steps: int = 0
    tool_trace: list[str] = []
    """The steps the agent announced (::harness-step:: lines), in order."""
    diff: DiffStat | None = None
    sandbox: str = "local"
    image_id: str | None = None
    spend: ModelSpend | None = None
    """Its model calls through the run's gateway; None when the run has no [model]."""


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
    spend: ModelSpend | None = None
    """Model spend of all its attempts; None when the run has no [model]."""


# --- integration and gate ------------------------------------------------------------


class MergeStep(Model):
    task_id: str
    outcome: Literal["folded", "conflicted", "skipped", "retried", "rejected_by_gate", "empty"]
    agent_head: str
    head_before: str
    merge_commit: str | None = None
    tree: str | None = None
    conflict: ConflictRecord | None = None
    strategy: str | None = None
    detail: str = ""
    """Why a step ended as it did, when that is not obvious (a failed retry, a stop)."""


class MergeReport(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    onto: str
    base_commit: str
    order: Literal["finish", "plan", "given"] = "finish"
    policy: Literal["skip", "retry", "fail"] = "skip"
    branch: str
    head: str
    steps: list[MergeStep] = []
    created_at: datetime = Field(default_factory=utcnow)
    status: Literal["clean", "conflicted", "failed"] = "clean"
    """clean: every branch folded (or was empty); conflicted: some were left out
    (policy skip, or a retry that did not help); failed: policy fail stopped at a
    conflict and the integration ref was not moved."""
    ref_moved: bool = False
    """Whether `branch` was moved to `head`."""

    @property
    def folded(self) -> list[str]:
        return [s.task_id for s in self.steps if s.outcome == "folded"]

    @property
    def conflicts(self) -> list[ConflictRecord]:
        return [s.conflict for s in self.steps if s.conflict is not None]

    @property
    def unresolved(self) -> list[ConflictRecord]:
        """Conflicts whose branch stayed out of the integration."""
        return [s.conflict for s in self.steps if s.outcome == "conflicted" and s.conflict is not None]


class FoldResult(Model):
    """What a pure fold built: objects only, no ref moved."""

    onto: str
    head: str
    """The last clean fold (`onto` when nothing folded)."""
    tree: str
    steps: list[MergeStep] = []
    stopped: bool = False
    """True when policy `fail` stopped at a conflict; later tasks are "skipped"."""

    @property
    def folded(self) -> list[str]:
        return [s.task_id for s in self.steps if s.outcome == "folded"]

    @property
    def unresolved(self) -> list[ConflictRecord]:
        return [s.conflict for s in self.steps if s.outcome == "conflicted" and s.conflict is not None]


# --- conflict forecast ---------------------------------------------------------------


class ForecastTask(Model):
    task_id: str
    status: str
    """The task's status in the record, or "running" when it has none yet."""
    source: Literal["branch", "attempt", "worktree"] | None = None
    """Where its changes were read: the task branch, its latest attempt ref, or the
    live worktree of a running attempt (None: nothing to read)."""
    head: str | None = None
    paths: list[str] = []
    """Files it changes, as paths of the base."""


class ForecastPath(Model):
    path: str
    """Path of the base."""
    a_ranges: list[HunkRange] = []
    """Lines of the base the first task changes (count 0: an insertion after `start`)."""
    b_ranges: list[HunkRange] = []
    overlap: bool = False
    """The changed regions overlap or touch (git conflicts on touching changes)."""


class ForecastPair(Model):
    a: str
    b: str
    kind: Literal["overlap", "same-file"]
    """overlap: some file has overlapping or adjacent changes; same-file: the two
    change common files, in disjoint regions only."""
    merge: Literal["conflict", "clean", "unchecked"] = "unchecked"
    """What an in-memory merge of the two heads says (overlap pairs only)."""
    paths: list[ForecastPath] = []
    conflict_paths: list[str] = []

    @property
    def collides(self) -> bool:
        return self.kind == "overlap" and self.merge != "clean"


class ScopeOverlap(Model):
    """Two tasks that may run side by side (neither depends on the other) whose
    declared write scopes can name a common path: a conflict is possible before
    either has written anything."""

    a: str
    b: str
    scope_a: list[str]
    scope_b: list[str]


class ConflictForecast(Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    base_commit: str
    tasks: list[ForecastTask] = []
    pairs: list[ForecastPair] = []
    scope_overlaps: list[ScopeOverlap] = []
    """From the plan's write scopes, known before any work exists."""
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def colliding(self) -> list[ForecastPair]:
        return [p for p in self.pairs if p.collides]


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
    timed_out: bool = False
    """The run was stopped at its time limit (`reason` says after how long)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.errored == 0


class GateRun(Model):
    commit: str
    tasks: list[str]
    """Tasks folded into the tested commit."""
    purpose: str = "gate"
    """gate (the integration head), rerun (its failures once more), bisect (a
    prefix of the folded sequence, during the culprit search), rebuilt (the
    integration rebuilt without the culprits found so far, gated again), base,
    alone (a culprit folded alone, to tell a semantic conflict), partners (a
    culprit that passes alone folded with some earlier branches, to name the ones
    it clashes with)."""
    tests: TestReport
    log_path: str | None = None


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
    head: str | None = None
    """The integration head the gate was asked to test."""
    base_commit: str | None = None
    """The commit the integration is folded onto."""
    sandbox: str | None = None
    reason: str | None = None
    """Why the gate is red, or how it got green (e.g. culprits removed)."""
    culprit_tests: dict[str, list[str]] = {}
    """Per culprit, the tests that failed once it was folded."""
    rebuilt: bool = False
    """The integration was rebuilt without the culprits (and its branch moved)."""
    land_error: str | None = None
    """Why landing was refused (the ref moved since the gate started)."""
    partners: dict[str, list[str]] = {}
    """Per culprit that passes alone, the earlier tasks it fails with (its semantic
    ConflictRecord's `partners`)."""
    order: Literal["plan", "integration"] | None = None
    """The order the culprit search folded the branches in: plan (blame does not
    depend on the agents' finish order; the later of a clashing pair in the plan is
    rejected) or integration (the integration's own order: when it was given
    explicitly, or when a fold in plan order does not give the tree that was
    gated). None: no search (green at once, or a record older than this field)."""
    test_timeout_s: float | None = None
    """The time limit of each test run."""

    @property
    def test_runs(self) -> int:
        return len(self.runs)

    def runs_for(self, *purposes: str) -> int:
        """How many runs had one of these purposes (e.g. "bisect", "base": the search)."""
        return sum(1 for r in self.runs if r.purpose in purposes)


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
    status: Literal["running", "finished", "cancelled", "interrupted"] = "running"
    """`interrupted` is never written: readers show a `running` run whose process is
    gone that way (`harness resume RUN` finishes it)."""
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    tasks: dict[str, AgentResult] = {}
    task_order: list[str] = []
    worktrees: list[str] = []
    merge: MergeReport | None = None
    conflicts: list[ConflictRecord] = []
    gate: GateReport | None = None
    scope_overlaps: list[ScopeOverlap] = []
    """Pairs of independent tasks whose declared write scopes overlap."""
    cancelled_by: str | None = None
    """The signal that cancelled the run (SIGINT, SIGTERM), when one did."""
    seq: int | None = None
    """The last event of the run's log this snapshot reflects (readers replay the rest)."""
    spend: ModelSpend | None = None
    """Model spend of every task's attempts; None when the run has no [model]."""

    @property
    def ok(self) -> bool:
        return bool(self.tasks) and all(r.status == TaskStatus.succeeded for r in self.tasks.values())
