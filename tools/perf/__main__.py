"""Benchmarks behind `scripts/perf`. Each compares the harness with a baseline
measured in the same run and prints the ratio; none of this runs in the tests."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from harness.repo.workspace import Workspace

from . import gateway, startup, stats
from .targets import make_target, noop_plan


def bench_provision(ns=(10, 50, 100), n_files: int = 400) -> list[dict]:
    """N detached worktrees through the harness vs `git worktree add` from a shell,
    interleaved one for one so both see the same disk (its speed drifts a lot)."""
    rows = []
    print(f"provisioning worktrees on a repository of {n_files} files (interleaved)")
    print(f"{'N':>5} {'harness s':>10} {'git s':>8} {'ratio':>7} {'ms/wt':>7}")
    for n in ns:
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp) / "repo"
            head = make_target(repo, n_files)
            ws = Workspace(repo)
            harness_s = git_s = 0.0
            for i in range(n):
                t0 = time.perf_counter()
                ws.create_worktree(f"perf-{i}", ws.root / "worktrees" / "perf" / f"t{i}", head)
                t1 = time.perf_counter()
                subprocess.run(["sh", "-c", f'git -C "{repo}" worktree add -q --detach '
                                f'"{tmp}/loop/t{i}" {head}'], check=True)
                t2 = time.perf_counter()
                harness_s += t1 - t0
                git_s += t2 - t1
        row = {"n": n, "harness_s": harness_s, "git_s": git_s, "ratio": git_s / harness_s}
        rows.append(row)
        print(f"{n:>5} {harness_s:>10.2f} {git_s:>8.2f} {row['ratio']:>6.2f}x "
              f"{1000 * harness_s / n:>7.1f}")
    print("ratio = git time / harness time (above 1: the harness is faster)")
    return rows


def bench_overhead(n_tasks: int = 300, max_parallel: int = 8, n_files: int = 400) -> dict:
    """Wall time of a run of no-op agents vs the agents' own time / parallelism."""
    from harness.run.lifecycle import run_plan

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_target(repo, n_files)
        plan = noop_plan(Path(tmp) / "plan.toml", n_tasks, max_parallel)
        t0 = time.perf_counter()
        record = run_plan(plan, repo, run_id="overhead")
        wall = time.perf_counter() - t0
    agent_s = sum(a.duration_s for r in record.tasks.values() for a in r.attempts)
    ideal = agent_s / max_parallel
    per_task_ms = 1000 * (wall - ideal) * max_parallel / n_tasks
    print(f"orchestrator: {n_tasks} no-op tasks, {max_parallel} at once, {n_files}-file repository")
    print(f"  wall {wall:.2f}s; agents' own time {agent_s:.2f}s / {max_parallel} = {ideal:.2f}s; "
          f"overhead {wall - ideal:.2f}s ({per_task_ms:.1f} ms of a worker per task: worktree, "
          f"commit, record)")
    return {"wall_s": wall, "agent_s": agent_s, "ideal_s": ideal, "overhead_s": wall - ideal,
            "per_task_ms": per_task_ms, "ok": record.ok}


SECTIONS = {
    "startup": lambda quick: startup.bench_startup(7 if quick else 15),
    "stats": lambda quick: stats.bench_compare(3 if quick else 5),
    "provision": lambda quick: bench_provision((10, 50) if quick else (10, 50, 100)),
    "overhead": lambda quick: (bench_overhead(60 if quick else 300, n_files=4),
                               bench_overhead(60 if quick else 300, n_files=400)),
    "gateway": lambda quick: gateway.bench_gateway(calls=200 if quick else 600),
}


def _optional_sections() -> dict:
    """Sections whose modules may need a daemon or are optional."""
    extra = {}
    try:
        from . import integrate
        extra["integrate"] = lambda quick: integrate.bench_integrate((10, 100) if quick else (10, 100, 300))
    except ImportError:
        pass
    try:
        from . import gate
        extra["gate"] = lambda quick: gate.bench_bisect()
    except ImportError:
        pass
    from . import store
    extra["store"] = lambda quick: store.bench_store((50, 100) if quick else (100, 300))
    from . import output
    extra["output"] = lambda quick: output.bench_output_memory(
        flood=100_000_000 if quick else 500_000_000)
    try:
        from . import containers
        extra["docker"] = lambda quick: (containers.bench_attempt_overhead(10 if quick else 30),
                                         containers.bench_parallel_start(20 if quick else 100))
    except ImportError:
        pass
    return extra


def main(argv: list[str] | None = None) -> None:
    sections = {**SECTIONS, **_optional_sections()}
    ap = argparse.ArgumentParser(prog="scripts/perf", description="harness benchmarks")
    ap.add_argument("sections", nargs="*", choices=[[], *sections], help="default: all")
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args(argv)
    for name in args.sections or list(sections):
        print(f"\n== {name} ==", flush=True)
        sections[name](args.quick)


if __name__ == "__main__":
    main()
