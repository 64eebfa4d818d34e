"""One gate test run: a fresh detached worktree of a commit, the test command in a
sandbox, a TestReport, the worktree removed.

Each run gets `<common>/harness/worktrees/<run>/gate-<n>` and its own folder
`runs/<run>/gate/<n>/` (output.log, and harness/ with gate.json, mounted read-only
at /harness in docker). Results are cached by tree: two commits with one tree are
tested once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pygit2

from ..progress import Progress
from ..records import GateRun, SandboxRequest, TestReport
from ..repo.store import RunStore
from ..repo.workspace import Workspace, worktree_name
from ..sandbox.base import Sandbox
from .junit import JUNIT_NAME, build_report, flaky_after_rerun, wrap_command


class GateTester:
    """Runs the test command on commits of one run, records every run."""

    def __init__(self, ws: Workspace, store: RunStore, sandbox: Sandbox, test_cmd: str, *,
                 timeout_s: float, env: dict[str, str], progress: Progress) -> None:
        self.ws = ws
        self.store = store
        self.sandbox = sandbox
        self.test_cmd = test_cmd
        self.timeout_s = timeout_s
        self.env = env
        self.progress = progress
        self.runs: list[GateRun] = []
        self._by_tree: dict[str, GateRun] = {}

    def test(self, commit: str, tasks: list[str], purpose: str, *,
             rerun_failed: bool = False) -> tuple[GateRun, GateRun | None]:
        """Test `commit` (cached by tree). With `rerun_failed`, a red run's failing
        tests run once more in the same worktree; the second GateRun carries the
        tests that passed then as `flaky`."""
        tree = str(self.ws.repo()[commit].peel(pygit2.Commit).tree_id)
        cached = self._by_tree.get(tree)
        if cached is not None and not rerun_failed:
            return cached, None
        n, gdir = self._allocate()
        wt = self.ws.root / "worktrees" / self.store.run_id / f"gate-{n}"
        hdir = gdir / "harness"
        hdir.mkdir(parents=True)
        (hdir / "gate.json").write_text(json.dumps({"run": self.store.run_id, "commit": commit,
                                                    "tasks": tasks, "purpose": purpose}, indent=1))
        with self.ws.scratch_worktree(worktree_name(self.store.run_id, wt.name), wt, commit):
            first = self._one(wt, hdir, gdir, commit, tasks, purpose, n, rerun=None)
            again = None
            if rerun_failed and not first.tests.ok and first.tests.failing:
                (wt / JUNIT_NAME).unlink(missing_ok=True)
                again = self._one(wt, hdir, gdir, commit, tasks, "rerun", n, rerun=first.tests.failing)
                flaky = flaky_after_rerun(first.tests, again.tests)
                again = again.model_copy(update={"tests": again.tests.model_copy(update={"flaky": flaky})})
        self._by_tree.setdefault(tree, first)
        return first, again

    def _allocate(self) -> tuple[int, Path]:
        root = self.store.dir / "gate"
        root.mkdir(parents=True, exist_ok=True)
        n = len(list(root.iterdir())) + 1
        while True:
            try:
                (root / str(n)).mkdir()
            except FileExistsError:
                n += 1
                continue
            if not (self.ws.root / "worktrees" / self.store.run_id / f"gate-{n}").exists():
                return n, root / str(n)
            n += 1

    def _one(self, wt: Path, hdir: Path, gdir: Path, commit: str, tasks: list[str], purpose: str,
             n: int, *, rerun: list[str] | None) -> GateRun:
        log = gdir / ("rerun.log" if rerun else "output.log")
        cmd = self.test_cmd
        req = SandboxRequest(workspace=wt, harness_dir=hdir, command=wrap_command(cmd, rerun),
                             env={**self.env, "HARNESS_RUN": self.store.run_id, "HARNESS_GATE": str(n),
                                  "HARNESS_COMMIT": commit},
                             timeout_s=self.timeout_s, log_path=log,
                             labels={"harness.run": self.store.run_id, "harness.task": "gate",
                                     "harness.attempt": str(n)})
        res = self.sandbox.run(req)
        report: TestReport = build_report(cmd, res, wt, commit)
        if report.timed_out:
            report = report.model_copy(update={"reason": f"timed out after {self.timeout_s:g}s"})
        run = GateRun(commit=commit, tasks=list(tasks), purpose=purpose, tests=report, log_path=str(log))
        self.runs.append(run)
        self.store.event("gate_run", purpose=purpose, commit=commit, tasks=len(tasks), ok=report.ok,
                         failing=report.failing[:20], duration_s=report.duration_s)
        self.progress(_line(len(self.runs), run))
        return run


def _line(k: int, run: GateRun) -> str:
    t = run.tests
    if t.ok:
        what = "green" + (f" ({t.passed} passed)" if t.source == "junit" else "")
    else:
        names = ", ".join(t.failing[:3]) + (f" +{len(t.failing) - 3}" if len(t.failing) > 3 else "")
        what = f"red ({t.reason or 'failed'}" + (f"; failing {names}" if names else "") + ")"
    if t.flaky:
        what += f", flaky: {', '.join(t.flaky[:3])}"
    return (f"gate run {k} [{run.purpose}] {run.commit[:10]} with {len(run.tasks)} branch(es): "
            f"{what} in {t.duration_s:.1f}s")
