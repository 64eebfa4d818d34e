"""The gate's input, checked before anything is created: the run was integrated and
its integration branch has not moved, a test command, the sandbox, the land ref
(exists, builds on the integration's base, not checked out in a worktree unless
forced), the test runs' time limit, and the plan order the culprit search folds in.
Every check raises UsageError (or RepoError, PlanError): exit 2, nothing created.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2
from pydantic import ValidationError

from ..config import WEEK_S, RunConfig, SandboxConfig
from ..errors import PlanError, RepoError, UsageError
from ..integrate.integrator import integration_ref
from ..records import MergeReport, RunRecord
from ..repo.run import Run
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from ..sandbox import default_config, sandbox_override


@dataclass
class GateInput:
    """Everything the gate needs, validated (check_gate_input)."""

    ws: Workspace
    store: RunStore
    record: RunRecord
    merge: MergeReport
    run: RunConfig
    test_cmd: str
    sandbox_cfg: SandboxConfig
    land_ref: str | None
    land_old: str | None
    timeout_s: float
    plan_order: list[str]


def check_gate_options(*, test_cmd: str | None = None, land: str | None = None,
                       force_land: bool = False, timeout_s: float | None = None) -> None:
    """Refuse options that are wrong whatever the run (checked before it is opened). Raises UsageError."""
    if test_cmd is not None and not test_cmd.strip():
        raise UsageError("--test-cmd is empty; give the command that runs the tests")
    if force_land and land is None:
        raise UsageError("--force-land needs --land REF")
    if timeout_s is not None and not 0 < timeout_s <= WEEK_S:  # also refuses nan
        raise UsageError(f"--timeout {timeout_s:g}: give seconds, more than 0 and at most a week ({WEEK_S:g})")


def check_gate_input(handle: Run, *, test_cmd: str | None = None,
                     land: str | None = None, sandbox: str | None = None,
                     force_land: bool = False, timeout_s: float | None = None) -> GateInput:
    """Everything the gate needs, validated. Raises UsageError (exit 2) and creates nothing."""
    check_gate_options(test_cmd=test_cmd, land=land, force_land=force_land, timeout_s=timeout_s)
    ws, store, record, run_id = handle.ws, handle.store, handle.record, handle.run_id
    merge = record.merge
    if merge is None:
        raise UsageError(f"run {run_id!r} was not integrated; run `harness integrate {run_id}` first")
    if not merge.ref_moved:
        raise UsageError(f"run {run_id!r}: its integration stopped at a conflict (policy fail); "
                         "nothing to gate")
    now = ws.ref_target(integration_ref(run_id))
    if now != merge.head:
        raise RepoError(f"{merge.branch} moved since it was integrated (recorded {merge.head[:10]}, "
                        f"now {(now or 'deleted')[:10]}); re-run `harness integrate {run_id}`")
    run = _run_settings(handle)
    cmd = test_cmd if test_cmd is not None else run.test_cmd
    if not cmd or not cmd.strip():
        raise UsageError(f"run {run_id!r}: no test command; set [run] test_cmd in the plan "
                         "or pass --test-cmd")
    cfg = sandbox_override(run.sandbox if record.plan else default_config(record.sandbox), sandbox)
    land_ref = land_old = None
    if land is not None:
        land_ref, land_old = _land_target(ws, land, merge.base_commit)
        if not force_land:
            _refuse_checked_out(ws, land, land_ref)
    return GateInput(ws, store, record, merge, run, cmd, cfg, land_ref, land_old,
                  timeout_s if timeout_s is not None else run.test_timeout_s, plan_order(handle))


def plan_order(handle: Run) -> list[str]:
    """The run's tasks in plan order, each after the tasks it depends on (a dependent's
    branch holds its dependencies' work, so folding it first would fold theirs too)."""
    order = list(handle.record.task_order)
    if handle.plan is not None:
        deps = {t: list(r.depends_on) for t, r in handle.plan.tasks.items()}
    else:
        deps = {t.get("id"): list(t.get("depends_on") or []) for t in handle.record.plan.get("task") or []
                if isinstance(t, dict)}
    out: list[str] = []

    def visit(task: str, stack: frozenset[str]) -> None:
        if task in out or task in stack:
            return
        for dep in deps.get(task, ()):
            visit(dep, stack | {task})
        out.append(task)

    for task in order:
        visit(task, frozenset())
    known = set(order)
    return [t for t in out if t in known]


def _run_settings(handle: Run) -> RunConfig:
    """The run's [run] settings: from the plan it started with, or for a run older
    than its saved plan, validated from the raw plan in its record. Raises PlanError."""
    if handle.plan is not None:
        return handle.plan.run
    try:
        return RunConfig.model_validate(handle.record.plan.get("run") or {})
    except ValidationError as exc:
        raise PlanError(f"run {handle.run_id!r}: its recorded plan has an invalid [run] table: "
                        f"{exc.errors()[0]['msg']}") from None


def _land_target(ws: Workspace, name: str, base_commit: str) -> tuple[str, str]:
    """The full name and current value of the ref to land on. Raises UsageError
    when it does not exist, is symbolic, or is not an ancestor of the integration's
    base (landing would then drop commits of it)."""
    repo = ws.repo()
    if name == "HEAD":
        raise UsageError("--land HEAD: name the branch to land on")
    candidates = [name] if name.startswith("refs/") else [f"refs/heads/{name}", f"refs/{name}"]
    ref = next((r for r in map(repo.references.get, candidates) if r is not None), None)
    if ref is None:
        raise UsageError(f"--land {name}: no such ref")
    if ref.type == pygit2.enums.ReferenceType.SYMBOLIC:
        raise UsageError(f"--land {name}: a symbolic ref; name the branch to land on")
    old = str(ref.target)
    try:
        repo[ref.target].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise UsageError(f"--land {name}: {ref.name} does not point at a commit") from None
    if old != base_commit and not repo.descendant_of(pygit2.Oid(hex=base_commit), ref.target):
        raise UsageError(f"--land {name}: {ref.name} ({old[:10]}) is not an ancestor of the "
                         f"integration's base {base_commit[:10]}; integrate onto it first")
    return ref.name, old


def _refuse_checked_out(ws: Workspace, name: str, ref: str) -> None:
    """Moving the branch a worktree has checked out leaves that worktree's index and
    files at the old commit, so `git status` there shows the landed work as reverted.
    git push refuses the same (receive.denyCurrentBranch); so does the gate."""
    where = ws.checked_out_branches().get(ref)
    if where is not None:
        raise UsageError(f"--land {name}: {ref} is checked out in {where}; landing would leave that "
                         "worktree behind (it would show the landed work as reverted); check out "
                         "another branch there, land elsewhere, or pass --force-land")
