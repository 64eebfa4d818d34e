"""The merge-queue gate: test the integration head in a fresh sandbox; when red,
find the culprit branches by bisecting the folded sequence (culprits.py),
rebuild the integration without them and test it again; land the exact tested
commit on an explicit ref by compare-and-swap, only when green.

Blame is stable: the search folds the branches in plan order (a task after the
tasks it depends on), not in the integration's order, which is by default the
agents' finish order. So of a pair that fails only together, the later one in the
plan is rejected and the earlier one stays, however the agents finished; the
rebuilt integration is in that order too. The search keeps the integration's
order when it was given explicitly (`integrate --order given`, the bench's
fastest-first: a deliberate priority, as stable as the plan's) and when folding in
plan order does not give the tree that was gated (a conflict in that order);
GateReport.order says which. A culprit that passes
alone gets a semantic ConflictRecord naming its `partners`, the smallest set of
earlier branches it fails with (culprits.find_partners); those runs have the
purpose "partners".

Each test run is limited by `test_timeout_s` of the plan's [run] table (or
`timeout_s` given to `gate_run`), not by the agents' `timeout_s`.

`gate_run` checks its input first (inputs.py: a run that was integrated, a
test command that is not empty, a sandbox that can run, an existing land ref that
the integration builds on and that no worktree has checked out unless forced) and
raises UsageError before any test runs. A red gate is a result (GateReport with
status "red"), recorded in the run record and as a note on the tested commit;
a land refused because the ref moved since the gate started raises LandRefused
after the report is recorded.
"""

from __future__ import annotations

import json

import pygit2

from ..errors import GitError, LandRefused
from ..integrate.integrator import fold, integration_ref, note_text
from ..progress import Progress, quiet
from ..records import ConflictRecord, FoldResult, GateReport, GateRun, MergeReport, utcnow
from ..repo.run import Run
from ..repo.store import RunStore
from ..repo.workspace import Workspace
from ..sandbox import get_sandbox
from .culprits import Bisection, Kind, Oracle, find_culprits, find_partners
from .inputs import GateInput, check_gate_input
from .junit import passes
from .tester import GateTester

GATE_NOTE_MARK = "\n--- harness gate ---\n"


class _Folds:
    """Pure folds of subsequences of the integrated branches, cached."""

    def __init__(self, ws: Workspace, merge: MergeReport, run_id: str) -> None:
        self.ws = ws
        self.merge = merge
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

    def search_order(self, plan_order: list[str], progress: Progress) -> tuple[list[str], str]:
        """The folded branches in plan order when that fold gives the gated tree,
        else (or when the integration's order was given explicitly) in the
        integration's order; and which of the two it is."""
        if self.merge.order == "given":
            return self.seq, "integration"
        rank = {t: i for i, t in enumerate(plan_order)}
        planned = sorted(self.seq, key=lambda t: rank.get(t, len(rank)))
        if planned == self.seq:
            return planned, "plan"
        res = self.result(tuple(planned))
        gated = str(self.ws.repo()[self.merge.head].peel(pygit2.Commit).tree_id)
        if res.tree == gated and not any(s.outcome == "conflicted" for s in res.steps):
            return planned, "plan"
        progress("warning: folded in plan order the branches do not give the tree that was gated; "
                 "blaming in the integration's order")
        return self.seq, "integration"


def gate_run(run: Run, *, test_cmd: str | None = None, land: str | None = None,
             force_land: bool = False, rerun_failed: bool = False, sandbox: str | None = None,
             check_alone: bool = True, timeout_s: float | None = None,
             progress: Progress = quiet) -> GateReport:
    """Gate a run's integration; see the module docstring. Returns the GateReport
    (also in the run record and noted on the tested commit). Raises UsageError on
    bad input, SandboxUnavailable when the sandbox cannot run, LandRefused when
    the land ref moved since the gate started. A land ref checked out in a worktree
    is refused (UsageError) unless `force_land`. `timeout_s` limits each test run
    (default: the plan's [run] test_timeout_s). Without `check_alone` no culprit is
    tested alone, so no semantic conflict is recorded and no partner searched."""
    inp = check_gate_input(run, test_cmd=test_cmd, land=land, sandbox=sandbox, force_land=force_land,
                           timeout_s=timeout_s)
    with inp.store.writer("gate"):
        return _gate(inp, run.run_id, rerun_failed=rerun_failed, check_alone=check_alone, progress=progress)


def _gate(inp: GateInput, run_id: str, *, rerun_failed: bool, check_alone: bool,
          progress: Progress) -> GateReport:
    sb = get_sandbox(inp.sandbox_cfg)
    sb.check()
    if not sb.isolates:
        progress(f"warning: the {sb.name} sandbox does not isolate the tests")
    ws, store, merge = inp.ws, inp.store, inp.merge
    folds = _Folds(ws, merge, run_id)
    report = GateReport(run_id=run_id, status="red", test_cmd=inp.test_cmd, head=merge.head,
                        base_commit=merge.base_commit, sandbox=sb.name, test_timeout_s=inp.timeout_s)
    store.event("gate_started", head=merge.head, test_cmd=inp.test_cmd, land=inp.land_ref,
                land_old=inp.land_old, timeout_s=inp.timeout_s)
    progress(f"gating run {run_id}: {merge.branch} = {merge.head[:10]} ({len(folds.seq)} branch(es)), "
             f"`{inp.test_cmd}` in the {sb.name} sandbox, {inp.timeout_s:g}s a test run")
    tester = GateTester(ws, store, sb, inp.test_cmd, timeout_s=inp.timeout_s, env=dict(inp.run.env),
                        progress=progress)
    first, again = tester.test(merge.head, folds.seq, "gate", rerun_failed=rerun_failed)
    flaky = set(again.tests.flaky) if again is not None else set()
    by_prefix: dict[tuple[str, ...], GateRun] = {tuple(folds.seq): first}

    def oracle(prefix: tuple[str, ...], kind: Kind) -> bool:
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
        seq, order = folds.search_order(inp.plan_order, progress)
        by_prefix[tuple(seq)] = first
        progress(f"red: bisecting {len(seq)} branch(es) for culprits, in {order} order")
        bis = find_culprits(seq, oracle, head_passes=False)
        for c in bis.culprits:
            culprit_runs[c.task] = by_prefix[c.failing]
        report = report.model_copy(update={"order": order})
    semantic = _culprit_conflicts(folds, bis, culprit_runs, tester, oracle, check_alone, run_id, progress) \
        if bis.culprits else {}
    kept_head = folds.head(bis.kept) if bis.culprits else merge.head
    green = bis.green and (bool(bis.kept) or not bis.culprits)
    reason = report.reason
    if bis.base_red:
        reason = f"the base {merge.base_commit[:10]} fails the tests itself; nothing to blame"
    elif bis.culprits and not bis.kept:
        reason = "every integrated branch was rejected by the gate"
    elif bis.culprits:
        reason = f"green without {len(bis.culprits)} culprit(s): " + ", ".join(
            c.task + (f" (with {', '.join(semantic[c.task].partners)})" if c.task in semantic else "")
            for c in bis.culprits)
    elif not green:
        reason = "red"
    timed_out = sum(1 for r in tester.runs if r.tests.timed_out)
    if timed_out and not green:
        reason = (f"{reason}; {timed_out} test run(s) timed out after {inp.timeout_s:g}s "
                  "(gate --timeout, [run] test_timeout_s)")
    report = report.model_copy(update={
        "status": "green" if green else "red",
        "tested_commit": kept_head if green else None,
        "runs": tester.runs, "culprits": [c.task for c in bis.culprits],
        "culprit_tests": {t: r.tests.failing for t, r in culprit_runs.items()},
        "partners": {t: c.partners for t, c in semantic.items()},
        "flaky": sorted(flaky), "reason": reason})
    new_merge = None
    if bis.culprits:
        new_merge = _rebuild(ws, folds, merge, bis, culprit_runs,
                             inp.plan_order if report.order == "plan" else None, progress)
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
                       tester: GateTester, oracle: Oracle, check_alone: bool, run_id: str,
                       progress: Progress) -> dict[str, ConflictRecord]:
    """Per culprit that passes alone (when checked), a semantic ConflictRecord that
    names its partners (culprits.find_partners, driven by the gate's oracle)."""
    out: dict[str, ConflictRecord] = {}
    repo = folds.ws.repo()
    for c in bis.culprits:
        if not check_alone or not c.before:
            continue
        start = len(tester.runs)
        found = find_partners(c.before, c.task, oracle)
        if not found.semantic:
            continue
        runs = sum(1 for r in tester.runs[start:] if r.purpose == "partners")
        partners = list(found.partners)
        progress(f"{c.task} passes alone and fails with {', '.join(partners)} "
                 f"({runs} partner-search run(s))")
        ours = folds.head(c.before)
        theirs = folds.heads[c.task]
        base = repo.merge_base(pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs))
        failing = culprit_runs[c.task].tests.failing
        out[c.task] = ConflictRecord(
            run_id=run_id, task_id=c.task, conflict_class="semantic", ours_commit=ours,
            theirs_commit=theirs, merge_base=str(base) if base else None, other_tasks=list(c.before),
            failing_tests=failing, partners=partners, partner_runs=runs,
            detail=f"passes alone; fails with {', '.join(partners)} "
                   f"(of {len(c.before)} branch(es) folded before it; {runs} partner-search run(s))")
    return out


def _rebuild(ws: Workspace, folds: _Folds, merge: MergeReport, bis: Bisection,
             culprit_runs: dict[str, GateRun], plan_order: list[str] | None,
             progress: Progress) -> MergeReport:
    """The MergeReport of the integration without the culprits, folded in plan order
    when `plan_order` is given (the search's order); its branch is moved
    (compare-and-swap from the gated head) to the rebuilt head."""
    rebuilt = {s.task_id: s for s in folds.result(bis.kept).steps} if bis.kept else {}
    steps = []
    # in the order of the rebuilt fold (the search's), so the steps read as its history
    rank = {t: i for i, t in enumerate(plan_order or ())}
    ordered = sorted(merge.steps, key=lambda s: rank.get(s.task_id, len(rank))) if rank else merge.steps
    for s in ordered:
        if s.task_id in culprit_runs:
            failing = culprit_runs[s.task_id].tests.failing
            steps.append(s.model_copy(update={"outcome": "rejected_by_gate", "merge_commit": None,
                                              "tree": None, "detail": "rejected by the gate; failing "
                                              + (", ".join(failing[:5]) or "tests")}))
        else:
            steps.append(rebuilt.get(s.task_id, s))
    head = folds.head(bis.kept)
    order = merge.order if [s.task_id for s in ordered] == [s.task_id for s in merge.steps] else "plan"
    new = merge.model_copy(update={"steps": steps, "head": head, "created_at": utcnow(), "order": order})
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
    # The agents' results stay as their agents ended: what the gate made of a branch is
    # its fate (fates.py), read from the report, the merge steps and the semantic records.
    record = store.load()
    conflicts = [c for c in record.conflicts
                 if not (c.conflict_class == "semantic" and c.task_id in semantic)]
    update = {"conflicts": conflicts + list(semantic.values()), "gate": report}
    if new_merge is not None and new_merge.ref_moved:
        update["merge"] = new_merge
    store.update(record, **update)
    store.event("gate_finished", status=report.status, runs=report.test_runs, culprits=report.culprits,
                partners=report.partners, tested=report.tested_commit, landed=report.landed_ref,
                land_error=report.land_error)
    target = report.tested_commit or gated
    existing = ws.read_note(target) or (note_text(new_merge) if new_merge and target == new_merge.head
                                         else "")
    ws.write_note(target, existing.split(GATE_NOTE_MARK)[0].rstrip("\n") + "\n" + GATE_NOTE_MARK
                  + gate_note(report))


def gate_note(report: GateReport) -> str:
    """The gate's part of the note on the tested commit: a summary line, then JSON."""
    head = (f"harness gate {report.run_id}: {report.status} after {report.test_runs} test run(s)"
            + (f"; culprits {', '.join(report.culprits)}" if report.culprits else "")
            + "".join(f" ({t} fails with {', '.join(p)})" for t, p in report.partners.items())
            + (f"; landed {report.landed_ref}" if report.landed_ref else ""))
    data = {"schema_version": report.schema_version, "run_id": report.run_id, "status": report.status,
            "tested_commit": report.tested_commit, "test_cmd": report.test_cmd,
            "culprits": report.culprit_tests, "partners": report.partners, "order": report.order,
            "flaky": report.flaky, "landed_ref": report.landed_ref,
            "runs": [{"purpose": r.purpose, "commit": r.commit, "tasks": len(r.tasks), "ok": r.tests.ok,
                      "failing": r.tests.failing[:20]} for r in report.runs]}
    return head + "\n\n" + json.dumps(data, indent=1) + "\n"
