"""The merge-queue gate: test the integration head in a fresh sandbox; when red,
find the culprit branches by bisecting the folded sequence (culprits.py),
rebuild the integration without them and test it again; land the exact tested
commit on an explicit ref by compare-and-swap, only when green.

`gate_run` checks its input first (a run that was integrated, a
test command that is not empty, a sandbox that can run, an existing land ref that
the integration builds on and that no worktree has checked out unless forced) and
raises UsageError before any test runs. A red gate is a result (GateReport with
status "red"), recorded in the run record and as a note on the tested commit;
a land refused because the ref moved since the gate started raises LandRefused
after the report is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pygit2
from pydantic import ValidationError

from ..config import RunConfig, SandboxConfig
from ..errors import GitError, LandRefused, PlanError, RepoError, UsageError
from ..integrate.integrator import fold, integration_ref, note_text
from ..progress import Progress, quiet
from ..records import (ConflictRecord, FailureInfo, FoldResult, GateReport, GateRun, MergeReport,
                       RunRecord, TaskStatus, utcnow)
from ..repo.run import Run
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from ..sandbox import default_config, get_sandbox, sandbox_override
from .culprits import Bisection, find_culprits
from .junit import passes
from .tester import GateTester

GATE_NOTE_MARK = "\n--- harness gate ---\n"


@dataclass
class _Input:
    ws: Workspace
    store: RunStore
    record: RunRecord
    merge: MergeReport
    run: RunConfig
    test_cmd: str
    sandbox_cfg: SandboxConfig
    land_ref: str | None
    land_old: str | None


def check_gate_options(*, test_cmd: str | None = None, land: str | None = None,
                       force_land: bool = False) -> None:
    """Refuse options that are wrong whatever the run (checked before it is opened). Raises UsageError."""
    if test_cmd is not None and not test_cmd.strip():
        raise UsageError("--test-cmd is empty; give the command that runs the tests")
    if force_land and land is None:
        raise UsageError("--force-land needs --land REF")


def check_gate_input(handle: Run, *, test_cmd: str | None = None,
                     land: str | None = None, sandbox: str | None = None,
                     force_land: bool = False) -> _Input:
    """Everything the gate needs, validated. Raises UsageError (exit 2) and creates nothing."""
    check_gate_options(test_cmd=test_cmd, land=land, force_land=force_land)
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
    return _Input(ws, store, record, merge, run, cmd, cfg, land_ref, land_old)


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


class _Folds:
    """Pure folds of subsequences of the integrated branches, cached."""

    def __init__(self, ws: Workspace, merge: MergeReport, run_id: str) -> None:
        self.ws = ws
        self.onto = merge.base_commit
        self.run_id = run_id
        folded = [s for s in merge.steps if s.outcome == "folded"]
        self.seq = [s.task_id for s in folded]
        self.heads = {s.task_id: s.agent_head for s in folded}
        self.strategies = {s.task_id: s.strategy for s in folded}
        self._cache: dict[tuple[str, ...], FoldResult] = {}

    def result(self, tasks: tuple[str, ...]) -> FoldResult:
        if tasks not in self._cache:
            self._cache[tasks] = fold(self.ws, self.onto, [(t, self.heads[t]) for t in tasks],
                                      run_id=self.run_id, strategies=self.strategies)
        return self._cache[tasks]

    def head(self, tasks: tuple[str, ...]) -> str:
        return self.result(tasks).head if tasks else self.onto


def gate_run(run: Run, *, test_cmd: str | None = None, land: str | None = None,
             force_land: bool = False, rerun_failed: bool = False, sandbox: str | None = None,
             check_alone: bool = True, progress: Progress = quiet) -> GateReport:
    """Gate a run's integration; see the module docstring. Returns the GateReport
    (also in the run record and noted on the tested commit). Raises UsageError on
    bad input, SandboxUnavailable when the sandbox cannot run, LandRefused when
    the land ref moved since the gate started. A land ref checked out in a worktree
    is refused (UsageError) unless `force_land`."""
    inp = check_gate_input(run, test_cmd=test_cmd, land=land, sandbox=sandbox, force_land=force_land)
    with inp.store.writer("gate"):
        return _gate(inp, run.run_id, rerun_failed=rerun_failed, check_alone=check_alone, progress=progress)


def _gate(inp: _Input, run_id: str, *, rerun_failed: bool, check_alone: bool,
          progress: Progress) -> GateReport:
    sb = get_sandbox(inp.sandbox_cfg)
    sb.check()
    if not sb.isolates:
        progress(f"warning: the {sb.name} sandbox does not isolate the tests")
    ws, store, merge = inp.ws, inp.store, inp.merge
    folds = _Folds(ws, merge, run_id)
    report = GateReport(run_id=run_id, status="red", test_cmd=inp.test_cmd, head=merge.head,
                        base_commit=merge.base_commit, sandbox=sb.name)
    store.event("gate_started", head=merge.head, test_cmd=inp.test_cmd, land=inp.land_ref,
                land_old=inp.land_old)
    progress(f"gating run {run_id}: {merge.branch} = {merge.head[:10]} ({len(folds.seq)} branch(es)), "
             f"`{inp.test_cmd}` in the {sb.name} sandbox")
    tester = GateTester(ws, store, sb, inp.test_cmd, timeout_s=inp.run.timeout_s, env=dict(inp.run.env),
                        progress=progress)
    first, again = tester.test(merge.head, folds.seq, "gate", rerun_failed=rerun_failed)
    flaky = set(again.tests.flaky) if again is not None else set()
    by_prefix: dict[tuple[str, ...], GateRun] = {tuple(folds.seq): first}

    def oracle(prefix: tuple[str, ...], kind: str) -> bool:
        commit = folds.head(prefix)
        run, _ = tester.test(commit, list(prefix), kind)
        by_prefix[prefix] = run
        return passes(run.tests, flaky)

    culprit_runs: dict[str, GateRun] = {}
    if passes(first.tests, flaky) or (again is not None and passes(again.tests, flaky)):
        bis = Bisection(kept=tuple(folds.seq), green=True)
        if flaky:
            report = report.model_copy(update={"reason": f"green after a rerun; flaky: {', '.join(sorted(flaky))}"})
    else:
        progress(f"red: bisecting {len(folds.seq)} branch(es) for culprits")
        bis = find_culprits(folds.seq, oracle, head_passes=False)
        for c in bis.culprits:
            culprit_runs[c.task] = by_prefix[c.failing]
    semantic = _culprit_conflicts(folds, bis, culprit_runs, tester, check_alone, run_id) \
        if bis.culprits else {}
    kept_head = folds.head(bis.kept) if bis.culprits else merge.head
    green = bis.green and (bool(bis.kept) or not bis.culprits)
    reason = report.reason
    if bis.base_red:
        reason = f"the base {merge.base_commit[:10]} fails the tests itself; nothing to blame"
    elif bis.culprits and not bis.kept:
        reason = "every integrated branch was rejected by the gate"
    elif bis.culprits:
        reason = f"green without {len(bis.culprits)} culprit(s): {', '.join(c.task for c in bis.culprits)}"
    elif not green:
        reason = "red"
    report = report.model_copy(update={
        "status": "green" if green else "red",
        "tested_commit": kept_head if green else None,
        "runs": tester.runs, "culprits": [c.task for c in bis.culprits],
        "culprit_tests": {t: r.tests.failing for t, r in culprit_runs.items()},
        "flaky": sorted(flaky), "reason": reason})
    new_merge = None
    if bis.culprits:
        new_merge = _rebuild(ws, folds, merge, bis, culprit_runs, progress)
        report = report.model_copy(update={"rebuilt": new_merge.ref_moved})
    land_error = None
    if green and inp.land_ref is not None:
        try:
            ws.cas_update_ref(inp.land_ref, kept_head, inp.land_old)
            report = report.model_copy(update={"landed_ref": inp.land_ref, "landed_from": inp.land_old})
            progress(f"landed {inp.land_ref} = {kept_head[:10]} (was {(inp.land_old or '')[:10]})")
        except GitError:
            now = ws.ref_target(inp.land_ref)
            land_error = (f"refusing to land {inp.land_ref}: it moved since the gate started "
                          f"(was {(inp.land_old or 'absent')[:10]}, now {(now or 'deleted')[:10]}); "
                          f"re-run `harness integrate {run_id}` and `harness gate {run_id}`")
            report = report.model_copy(update={"land_error": land_error})
    report = report.model_copy(update={"ended_at": utcnow()})
    _record(ws, store, report, bis, culprit_runs, semantic, new_merge, first.commit)
    progress(f"gate {report.status} after {report.test_runs} test run(s)"
             + (f"; culprits: {', '.join(report.culprits)}" if report.culprits else ""))
    if land_error:
        raise LandRefused(land_error)
    return report


def _culprit_conflicts(folds: _Folds, bis: Bisection, culprit_runs: dict[str, GateRun],
                       tester: GateTester, check_alone: bool, run_id: str) -> dict[str, ConflictRecord]:
    """Per culprit that passes alone (when checked), a semantic ConflictRecord."""
    out: dict[str, ConflictRecord] = {}
    repo = folds.ws.repo()
    for c in bis.culprits:
        if not check_alone or not c.before:
            continue
        alone, _ = tester.test(folds.head((c.task,)), [c.task], "alone")
        if not alone.tests.ok:
            continue
        ours = folds.head(c.before)
        theirs = folds.heads[c.task]
        base = repo.merge_base(pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs))
        failing = culprit_runs[c.task].tests.failing
        out[c.task] = ConflictRecord(
            run_id=run_id, task_id=c.task, conflict_class="semantic", ours_commit=ours,
            theirs_commit=theirs, merge_base=str(base) if base else None, other_tasks=list(c.before),
            failing_tests=failing,
            detail=f"passes alone; fails once folded after {', '.join(c.before)}")
    return out


def _rebuild(ws: Workspace, folds: _Folds, merge: MergeReport, bis: Bisection,
             culprit_runs: dict[str, GateRun], progress: Progress) -> MergeReport:
    """The MergeReport of the integration without the culprits; its branch is moved
    (compare-and-swap from the gated head) to the rebuilt head."""
    rebuilt = {s.task_id: s for s in folds.result(bis.kept).steps} if bis.kept else {}
    steps = []
    for s in merge.steps:
        if s.task_id in culprit_runs:
            failing = culprit_runs[s.task_id].tests.failing
            steps.append(s.model_copy(update={"outcome": "rejected_by_gate", "merge_commit": None,
                                              "tree": None, "detail": "rejected by the gate; failing "
                                              + (", ".join(failing[:5]) or "tests")}))
        else:
            steps.append(rebuilt.get(s.task_id, s))
    head = folds.head(bis.kept)
    new = merge.model_copy(update={"steps": steps, "head": head, "created_at": utcnow()})
    try:
        ws.cas_update_ref(integration_ref(merge.run_id), head, merge.head)
        progress(f"rebuilt {merge.branch} = {head[:10]} without {', '.join(culprit_runs)}")
        return new.model_copy(update={"ref_moved": True})
    except GitError:
        progress(f"warning: {merge.branch} moved during the gate; left as it is")
        return new.model_copy(update={"ref_moved": False})


def _record(ws: Workspace, store: RunStore, report: GateReport, bis: Bisection,
            culprit_runs: dict[str, GateRun], semantic: dict[str, ConflictRecord],
            new_merge: MergeReport | None, gated: str) -> None:
    record = store.load()
    tasks = dict(record.tasks)
    for task, run in culprit_runs.items():
        failing = ", ".join(run.tests.failing[:5]) or "the tests"
        others = semantic[task].other_tasks if task in semantic else []
        why = (f"rejected by the gate: failing {failing} once folded after {', '.join(others)} "
               "(passes alone)" if others else f"rejected by the gate: failing {failing}")
        if task in tasks:
            tasks[task] = tasks[task].model_copy(update={
                "status": TaskStatus.rejected_by_gate, "exit_reason": why,
                "failure": FailureInfo(kind="rejected_by_gate", message=why)})
    conflicts = [c for c in record.conflicts
                 if not (c.conflict_class == "semantic" and c.task_id in semantic)]
    update = {"tasks": tasks, "conflicts": conflicts + list(semantic.values()), "gate": report}
    if new_merge is not None and new_merge.ref_moved:
        update["merge"] = new_merge
    store.update(record, **update)
    store.event("gate_finished", status=report.status, runs=report.test_runs, culprits=report.culprits,
                tested=report.tested_commit, landed=report.landed_ref, land_error=report.land_error)
    target = report.tested_commit or gated
    existing = ws.read_note(target) or (note_text(new_merge) if new_merge and target == new_merge.head
                                         else "")
    ws.write_note(target, existing.split(GATE_NOTE_MARK)[0].rstrip("\n") + "\n" + GATE_NOTE_MARK
                  + gate_note(report))


def gate_note(report: GateReport) -> str:
    """The gate's part of the note on the tested commit: a summary line, then JSON."""
    head = (f"harness gate {report.run_id}: {report.status} after {report.test_runs} test run(s)"
            + (f"; culprits {', '.join(report.culprits)}" if report.culprits else "")
            + (f"; landed {report.landed_ref}" if report.landed_ref else ""))
    data = {"schema_version": report.schema_version, "run_id": report.run_id, "status": report.status,
            "tested_commit": report.tested_commit, "test_cmd": report.test_cmd,
            "culprits": report.culprit_tests, "flaky": report.flaky, "landed_ref": report.landed_ref,
            "runs": [{"purpose": r.purpose, "commit": r.commit, "tasks": len(r.tasks), "ok": r.tests.ok,
                      "failing": r.tests.failing[:20]} for r in report.runs]}
    return head + "\n\n" + json.dumps(data, indent=1) + "\n"
