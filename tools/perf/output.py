"""Benchmark: the harness's memory while an agent floods its output (scripts/perf output).

Each measurement runs in a fresh Python process that drives one sandbox attempt and
reports its own peak RSS, so one flood does not inherit another's high-water mark.
The baseline is the same attempt printing 5 MB, measured in the same run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
from harness.config import DockerSandboxConfig, LocalSandboxConfig
from harness.sandbox import get_sandbox
from harness.records import SandboxRequest
kind, size = sys.argv[1], int(sys.argv[2])
sb = get_sandbox(DockerSandboxConfig() if kind == "docker" else LocalSandboxConfig())
sb.check()
with tempfile.TemporaryDirectory(prefix="harness-perf-") as tmp:
    root = Path(tmp)
    for d in ("ws", "h"):
        (root / d).mkdir()
    script = f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}; echo; echo END"
    req = SandboxRequest(workspace=root / "ws", harness_dir=root / "h", command=["sh", "-c", script],
                         timeout_s=1800, log_path=root / "out.log")
    result = sb.run(req)
    log_bytes = (root / "out.log").stat().st_size
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "log_bytes": log_bytes, "exit_code": result.exit_code, "reason": result.reason,
                  "tail_ok": result.output_tail.endswith("END\n")}))
"""


def measure(kind: str, size: int) -> dict:
    """Peak RSS (MB) of a process driving one attempt that prints `size` bytes."""
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(size)], check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_output_memory(kinds=("local", "docker"), flood: int = 500_000_000, baseline: int = 5_000_000) -> list[dict]:
    rows = []
    print(f"peak harness RSS while an agent prints {flood / 1e6:.0f} MB vs {baseline / 1e6:.0f} MB")
    print(f"{'sandbox':>8} {'base MB':>8} {'flood MB':>9} {'ratio':>6} {'log MB':>7} {'tail':>5}")
    for kind in kinds:
        base, big = measure(kind, baseline), measure(kind, flood)
        row = {"sandbox": kind, "baseline": base, "flood": big,
               "ratio": round(big["peak_rss_mb"] / base["peak_rss_mb"], 2)}
        rows.append(row)
        print(f"{kind:>8} {base['peak_rss_mb']:>8.0f} {big['peak_rss_mb']:>9.0f} {row['ratio']:>5.2f}x "
              f"{big['log_bytes'] / 1e6:>7.1f} {'ok' if big['tail_ok'] else 'LOST':>5}")
    print("ratio = peak RSS with the flood / with the baseline (1.00: memory does not grow with output)")
    return rows


if __name__ == "__main__":
    bench_output_memory()
