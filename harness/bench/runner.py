"""`harness bench`: baseline, strategies as parallel agents, tests, interleaved
measurements, integration of what improved, the gate, the integrated measurement,
profiles, and the report."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..config import Plan, RunConfig, TaskConfig
from ..errors import Cancelled, UsageError
from ..progress import Progress, quiet
from ..records import AgentResult, RunRecord, TaskStatus, TestReport, utcnow
from ..repo.run import Run
from ..repo.workspace import open_repo
from ..run.lifecycle import execute, prepare_resolved
from ..run.plan import new_run_id, resolve
from .flame import parse_folded, render_diff_svg, render_svg, top_frames
from .html import write_report
from .measure import Runner, Side
from .model import (AttemptRecord, BenchReport, CandidateReport, Machine, Measurement, Metric,
                    ProfileArtifacts, Target, TestSummary, TimelineEntry, build_summary)
from .spec import LoadedSpec, load_spec
from .stats import compare


def targets_cache() -> Path:
    """Where repositories made from bundled example folders live."""
    return Path.home() / ".cache" / "harness" / "targets"


def target_repo(loaded: LoadedSpec, repo: Path | None, cache: Path | None = None) -> Path:
    """The git repository to run against: --repo, the target when it is a repository,
    or else a repository made once from the target folder (a bundled example)."""
    if repo is not None:
        open_repo(repo)
        return repo
    src = loaded.target
    if (src / ".git").exists():
        return src
    digest = hashlib.sha256()
    files = sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        digest.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    cache = cache or targets_cache()
    dest = cache / f"{loaded.spec.name}-{digest.hexdigest()[:12]}"
    if not (dest / ".git").exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        env = ["-c", "user.name=harness", "-c", "user.email=harness@localhost"]
        for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                     ["commit", "-q", "-m", f"{loaded.spec.name}: baseline"]):
            subprocess.run(["git", *env, "-C", str(tmp), *args], check=True, capture_output=True)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def bench_plan(loaded: LoadedSpec, run_id: str) -> Plan:
    spec = loaded.spec
    run = RunConfig(id=run_id, base=spec.base, max_parallel=spec.max_parallel, sandbox=spec.sandbox,
                    timeout_s=spec.timeout_s, retries=spec.retries, test_cmd=spec.test_cmd, backoff_s=0.5,
                    stall_s=spec.stall_s, test_timeout_s=spec.test_timeout_s)
    return Plan(run=run, task=[TaskConfig(id=f.stem, strategy=str(f)) for f in loaded.strategy_files])


def run_bench(spec_path: Path, *, repo: Path | None = None, run_id: str | None = None,
              sandbox: str | None = None, repeats: int | None = None,
              progress: Progress = quiet, cache_dir: Path | None = None) -> tuple[BenchReport, Path]:
    """Run a bench end to end. Returns the report and the path of report.html.
    Raises UsageError on bad input, before anything is created."""
    loaded = load_spec(spec_path, sandbox=sandbox, repeats=repeats)
    spec = loaded.spec
    repo_path = target_repo(loaded, repo, cache_dir)
    run_id = run_id or "bench-" + new_run_id()
    plan = resolve(bench_plan(loaded, run_id), None)
    prepared = prepare_resolved(plan, repo_path, run_id=run_id)
    ws, store = prepared[0], prepared[1]
    t0 = utcnow()
    clock = lambda: (utcnow() - t0).total_seconds()  # noqa: E731
    timeline: list[TimelineEntry] = []

    progress(f"bench {spec.name}: {len(plan.tasks)} strategies on {repo_path}")
    record = execute(*prepared, progress=progress)
    run = Run(ws, store, record, plan)
    if record.status == "cancelled":
        raise Cancelled(f"bench cancelled by {record.cancelled_by}; the strategies' work is kept in run "
                        f"{run_id} (`harness resume {run_id}` finishes the agents)", record.cancelled_by)
    # The measuring, integrating and gating below run in scratch worktrees and sandboxes
    # of this run: hold its writer lock, so `harness clean --stale` leaves them alone.
    with store.writer("bench"):
        base = record.base_commit
        runner = Runner(ws, store, spec, progress, clock)
        _agent_timeline(record, timeline, t0)

        candidates = [r for r in record.tasks.values() if r.status == TaskStatus.succeeded
                      and r.head_commit and r.head_commit != base]
        progress(f"tests: baseline and {len(candidates)} strategy branch(es)")
        tests = _run_tests(runner, [("baseline", base)] + [(r.task_id, r.head_commit) for r in candidates],
                           timeline, clock)
        if not tests["baseline"].ok:
            raise UsageError(f"the baseline's own tests fail ({', '.join(tests['baseline'].failing[:3])}); "
                             "fix the target first")
        passing = [r for r in candidates if tests[r.task_id].ok]

        baseline = Side("baseline", base)
        sides = {r.task_id: Side(r.task_id, r.head_commit) for r in passing}
        progress(f"measuring baseline and {len(sides)} strategies: {spec.warmups} warm-up(s) + "
                 f"{spec.repeats} rounds, interleaved")
        runner.measure([baseline, *sides.values()], "strategies")
        _sample_timeline([baseline, *sides.values()], timeline, "bench")
        if baseline.error or not baseline.samples:
            raise UsageError(f"the baseline benchmark failed: {baseline.error}")
        comparisons = {name: _compare(spec, baseline.samples, s.samples)
                       for name, s in sides.items() if s.samples and not s.error}
        improved = sorted((n for n, c in comparisons.items() if _to_integrate(spec.integrate, c)),
                          key=lambda n: -comparisons[n].speedup)

        merge_outcome: dict[str, tuple[str, str | None]] = {}
        integration = None
        if improved:
            integration, tests["integration"] = _integrate_and_gate(run, improved, spec, runner, timeline,
                                              clock, merge_outcome, progress)
        integ_report = None
        if integration is not None:
            progress("measuring the integration against the baseline")
            ref_base = Side("baseline", base)
            integ = Side("integration", integration)
            runner.measure([ref_base, integ], "integration")
            _sample_timeline([integ], timeline, "bench")
            cmp = _compare(spec, ref_base.samples, integ.samples) if integ.samples and ref_base.samples else None
            integ_tests = tests.pop("integration", None)
            integ_report = CandidateReport(
                name="integration", task_id="integration", branch=f"harness/{run_id}/integration",
                head_commit=integration, status="succeeded" if integ.samples else "failed",
                exit_reason=integ.error, tests=TestSummary.from_test_report(integ_tests) if integ_tests else None,
                measurement=Measurement.from_samples(integ.samples, warmups_dropped=len(integ.warmups))
                if integ.samples else None,
                comparison=cmp, merge_outcome="folded",
                reference=Measurement.from_samples(ref_base.samples, warmups_dropped=len(ref_base.warmups))
                if ref_base.samples else None,
                merge_detail=f"{len([o for o in merge_outcome.values() if o[0] == 'folded'])} strategies folded")

        to_profile = {"baseline": base, **{n: s.commit for n, s in sides.items()},
                      **({"integration": integration} if integration else {})}
        progress(f"profiling {len(to_profile)} trees: " + ", ".join(to_profile))
        art = store.dir / "bench" / "artifacts"
        art.mkdir(parents=True, exist_ok=True)
        profiles = _profiles(runner, to_profile, art, timeline, clock, progress)

        reports = []
        record = run.reload()
        for tid in record.task_order:
            r = record.tasks[tid]
            side = sides.get(tid)
            outcome, detail = _outcome(r, tests.get(tid), side, comparisons.get(tid), merge_outcome)
            reports.append(CandidateReport(
                name=r.strategy or tid, task_id=tid, branch=r.branch, head_commit=r.head_commit,
                status=r.status.value, exit_reason=r.exit_reason, attempts=len(r.attempts),
                retries=r.retries, attempt_log=[AttemptRecord.from_attempt(a) for a in r.attempts],
                tests=TestSummary.from_test_report(tests[tid]) if tid in tests else None,
                measurement=Measurement.from_samples(side.samples, warmups_dropped=len(side.warmups),
                                                     profile=profiles.get(tid))
                if side and side.samples else None,
                comparison=comparisons.get(tid), merge_outcome=outcome, merge_detail=detail,
                spend=r.spend))
        if integ_report is not None and integ_report.measurement is not None:
            integ_report = integ_report.model_copy(update={"measurement": integ_report.measurement.model_copy(
                update={"profile": profiles.get("integration")})})
        base_meas = Measurement.from_samples(baseline.samples, warmups_dropped=len(baseline.warmups),
                                             profile=profiles.get("baseline"))
        report = BenchReport(
            run_id=run_id, created_at=record.created_at,
            target=Target(name=spec.name, path=str(repo_path), base_commit=base),
            spec=loaded.raw, metric=Metric(name=spec.metric, unit=spec.unit, direction=spec.direction),
            machine=Machine.current(), baseline=base_meas, candidates=reports, integration=integ_report,
            timeline=sorted(timeline, key=lambda e: (e.start, e.lane)),
            summary=build_summary(base_meas, reports, integ_report),
        )
        _, html = write_report(report, store.dir / "bench")
        store.event("bench_finished", report=str(html))
        return report, html


# --- phases ------------------------------------------------------------------------------


def _to_integrate(policy: str, cmp) -> bool:
    if policy == "not-slower":
        return not (cmp.significant and cmp.verdict == "slower")
    return cmp.significant and cmp.verdict == "faster"


def _compare(spec, base: list[float], cand: list[float]):
    return compare(base, cand, direction=spec.direction, confidence=spec.confidence,
                   seed=spec.seed, min_effect=spec.min_effect)


def _run_tests(runner: Runner, items: list[tuple[str, str]], timeline: list[TimelineEntry],
               clock) -> dict[str, TestReport]:
    def one(item):
        name, commit = item
        start = clock()
        rep = runner.test(commit, name)
        timeline.append(TimelineEntry(lane=name, label="tests", kind="tests",
                                      status="passed" if rep.ok else "failed", start=start, end=clock()))
        runner.progress(f"  tests {name}: " + ("green" if rep.ok else
                        f"red ({rep.failed} failed, {rep.errored} errors: {', '.join(rep.failing[:2])})"))
        return name, rep

    with ThreadPoolExecutor(max_workers=runner.spec.max_parallel) as pool:
        return dict(pool.map(one, items))


def _integrate_and_gate(run, improved, spec, runner, timeline, clock,
                        merge_outcome, progress) -> tuple[str | None, TestReport | None]:
    from ..gate.gate import gate_run
    from ..integrate.integrator import integrate_run

    start = clock()
    report = integrate_run(run, order="given", policy="skip", tasks=improved,
                           progress=lambda line: progress("  " + line))
    timeline.append(TimelineEntry(lane="integration", label=f"fold {len(report.folded)}",
                                  kind="integrate", status=report.status, start=start, end=clock()))
    for step in report.steps:
        if step.outcome == "folded":
            merge_outcome[step.task_id] = ("folded", None)
        elif step.conflict is not None:
            paths = ", ".join(p.path for p in step.conflict.paths[:3])
            others = step.conflict.other_tasks
            merge_outcome[step.task_id] = ("conflicted", f"conflict in {paths}"
                                           + (f" with {', '.join(others[:3])}" if others else ""))
    if not report.folded:
        return None, None
    start = clock()
    gate = gate_run(run, test_cmd=spec.test_cmd, progress=lambda line: progress("  " + line))
    timeline.append(TimelineEntry(lane="gate", label=f"{gate.test_runs} test runs", kind="gate",
                                  status=gate.status, start=start, end=clock()))
    conflicts = run.reload().conflicts
    for culprit in gate.culprits:
        semantic = next((c for c in conflicts if c.task_id == culprit and c.conflict_class == "semantic"), None)
        failing = semantic.failing_tests if semantic else gate.culprit_tests.get(culprit, [])
        merge_outcome[culprit] = ("rejected_by_gate", ("breaks " + ", ".join(failing[:2]) if failing
                                                       else "rejected by the gate")
                                  + (f" together with {', '.join(semantic.partners)}"
                                     if semantic and semantic.partners else ""))
    # the run of the tested commit: runs after it (a culprit alone, its partner search) test others
    tested = next((r.tests for r in reversed(gate.runs) if r.commit == gate.tested_commit), None)
    last = tested or (gate.runs[-1].tests if gate.runs else None)
    return (gate.tested_commit if gate.status == "green" else None), last


def _profiles(runner: Runner, commits: dict[str, str], art: Path, timeline, clock, progress
              ) -> dict[str, ProfileArtifacts]:
    out: dict[str, ProfileArtifacts] = {}
    base_stacks = None
    for name, commit in commits.items():
        start = clock()
        folded, why = runner.profile(commit, name)
        timeline.append(TimelineEntry(lane=name, label="profile", kind="profile",
                                      status="ok" if folded else "failed", start=start, end=clock()))
        if folded is None:
            progress(f"  profile {name}: {why}")
            continue
        stacks = parse_folded(folded)
        (art / f"{name}.folded").write_text(folded)
        (art / f"{name}.svg").write_text(render_svg(stacks, title=f"{name}: where the time goes"))
        diff = None
        if name == "baseline":
            base_stacks = stacks
        elif base_stacks:
            diff = f"{name}.diff.svg"
            (art / diff).write_text(render_diff_svg(base_stacks, stacks,
                                                    title=f"{name} vs baseline (red: grew, blue: shrank)"))
        out[name] = ProfileArtifacts(folded=f"artifacts/{name}.folded", svg=f"artifacts/{name}.svg",
                                     diff_svg=f"artifacts/{diff}" if diff else None,
                                     top_frames=top_frames(stacks, 12))
    return out


def _agent_timeline(record: RunRecord, timeline: list[TimelineEntry], t0) -> None:
    for r in record.tasks.values():
        for a in r.attempts:
            timeline.append(TimelineEntry(
                lane=r.task_id, label=f"attempt {a.number}" + (f", {a.steps} steps" if a.steps else ""),
                kind="retry" if a.number > 1 else "attempt",
                status=a.status.value, start=(a.started_at - t0).total_seconds(),
                end=(a.ended_at - t0).total_seconds()))


def _sample_timeline(sides: list[Side], timeline: list[TimelineEntry], kind: str) -> None:
    for s in sides:
        if s.started is not None:
            timeline.append(TimelineEntry(lane=s.name, label=f"{len(s.samples)} samples", kind=kind,
                                          status="failed" if s.error else "ok", start=s.started,
                                          end=s.ended or s.started))


def _outcome(r: AgentResult, tests: TestReport | None, side: Side | None, cmp,
             merge: dict[str, tuple[str, str | None]]) -> tuple[str, str | None]:
    if r.task_id in merge:
        return merge[r.task_id]
    if r.status != TaskStatus.succeeded:
        return "not_run", r.exit_reason
    if tests is not None and not tests.ok:
        return "failed_tests", "failing: " + ", ".join(tests.failing[:3])
    if side is not None and side.error:
        return "not_run", side.error
    if cmp is not None and not (cmp.significant and cmp.verdict == "faster"):
        return "not_improved", f"{cmp.verdict}: x{cmp.speedup:.3f} [{cmp.ci_low:.3f}, {cmp.ci_high:.3f}]"
    return "not_run", None
