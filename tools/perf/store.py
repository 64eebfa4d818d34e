"""`scripts/perf store`: bytes the run store writes for a run of N no-op tasks.

The event log is appended to and the record snapshotted a fixed number of times, so
a run's record I/O grows linearly with its events. The baseline, measured in the
same run from the same record, is what rewriting the whole record at every task end
costs (how the store worked before the log became the source of truth): it grows as
N squared.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .targets import make_target, noop_plan


def bench_store(ns=(100, 300), max_parallel: int = 8) -> list[dict]:
    from harness.run.lifecycle import run_plan
    from harness.records import AgentResult
    from harness.repo.store import RunStore

    rows = []
    print(f"run store: bytes written for N no-op tasks ({max_parallel} at once, local sandbox)")
    print(f"{'N':>5} {'events KB':>10} {'snapshots KB':>13} {'total KB':>9} {'B/task':>7} "
          f"{'rewrite-per-task KB':>20} {'ratio':>7}")
    real_snapshot = RunStore.snapshot
    for n in ns:
        written = {"snapshots": 0, "count": 0}

        def counting_snapshot(self, record, _real=real_snapshot, _w=written):
            _real(self, record)
            _w["snapshots"] += self.record_path.stat().st_size
            _w["count"] += 1

        RunStore.snapshot = counting_snapshot
        try:
            with tempfile.TemporaryDirectory() as tmp:
                repo = Path(tmp) / "repo"
                make_target(repo, 4)
                plan = noop_plan(Path(tmp) / "plan.toml", n, max_parallel)
                t0 = time.perf_counter()
                record = run_plan(plan, repo, run_id="store")
                wall = time.perf_counter() - t0
                run_dir = repo / ".git/harness/runs/store"
                events = (run_dir / "events.jsonl").stat().st_size
                finish_order = [e for e in RunStore(_ws(repo), "store").events()
                                if e["kind"] == "task_finished"]
        finally:
            RunStore.snapshot = real_snapshot
        # The baseline: the whole record rewritten after each task end, as it grew.
        rewrite, tasks_so_far = 0, {}
        for e in finish_order:
            tasks_so_far[e["task"]] = AgentResult.model_validate(e["payload"]["result"])
            rewrite += len(record.model_copy(update={"tasks": dict(tasks_so_far)}).model_dump_json(indent=2))
        total = events + written["snapshots"]
        row = {"n": n, "events_bytes": events, "snapshot_bytes": written["snapshots"],
               "snapshots": written["count"], "total_bytes": total, "rewrite_bytes": rewrite,
               "ratio": rewrite / total, "wall_s": wall}
        rows.append(row)
        print(f"{n:>5} {events / 1024:>10.0f} {written['snapshots'] / 1024:>13.0f} {total / 1024:>9.0f} "
              f"{total / n:>7.0f} {rewrite / 1024:>20.0f} {row['ratio']:>6.1f}x")
    print("ratio = whole-record-per-task bytes / bytes written now (grows with N: that one is O(N^2))")
    return rows


def _ws(repo: Path):
    from harness.repo.workspace import Workspace

    return Workspace(repo)
