"""`scripts/perf startup`: how long the CLI takes to start, against `python3 -c pass`.

The quick commands (`--version`, `status`, `show RUN`) should cost little more than
the interpreter itself: the CLI imports the library inside each command, so none of
them pays for what it does not use. Each figure is the median of several runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .targets import make_target, noop_plan


def _median_s(cmd: list[str], cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_startup(repeats: int = 15) -> dict:
    """Median wall time of `python -c pass` and of three quick harness commands."""
    harness = [sys.executable, "-m", "harness"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_target(repo, 4)
        subprocess.run([*harness, "run", str(noop_plan(Path(tmp) / "plan.toml", 2, 2)), "--repo", str(repo),
                        "--run-id", "startup"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = _median_s([sys.executable, "-c", "pass"], repo, repeats)
        rows = {"python -c pass": base}
        for label, args in (("harness --version", ["--version"]), ("harness status", ["status"]),
                            ("harness show RUN", ["show", "startup"])):
            rows[label] = _median_s([*harness, *args], repo, repeats)
    print(f"CLI start, median of {repeats} (ratio = time / `python -c pass`)")
    for label, secs in rows.items():
        print(f"  {label:<20} {1000 * secs:>7.1f} ms  {secs / base:>5.1f}x")
    return rows
