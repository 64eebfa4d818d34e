"""Benchmarks of the docker sandbox (scripts/perf calls these).

Each returns a dict of figures and prints one line. Both need a reachable daemon and
the sandbox image; they raise SandboxUnavailable otherwise.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.config import DockerSandboxConfig
from harness.errors import SandboxError
from harness.records import SandboxRequest


def _sandbox(config: DockerSandboxConfig):
    from harness.sandbox.docker import DockerSandbox

    sb = DockerSandbox(config)
    sb.check()
    return sb


def _request(root: Path, i: int, command: list[str], run_id: str) -> SandboxRequest:
    workspace, harness_dir = root / f"ws{i}", root / f"h{i}"
    workspace.mkdir(exist_ok=True)
    harness_dir.mkdir(exist_ok=True)
    return SandboxRequest(workspace=workspace, harness_dir=harness_dir, command=command, timeout_s=600,
                          log_path=root / "logs" / f"{i}.log",
                          labels={"harness.run": run_id, "harness.task": f"t{i}", "harness.attempt": "1"})


def bench_attempt_overhead(n: int = 20, config: DockerSandboxConfig | None = None) -> dict:
    """Per attempt, start to finish: the docker sandbox running `true` against a shell
    loop of `docker run --rm --network none IMAGE true`, same image, same run."""
    config = config or DockerSandboxConfig()
    sb = _sandbox(config)
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise SandboxError("the docker CLI is not on PATH; the baseline needs it")
    run_id = f"perf{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="harness-perf-") as tmp:
        root = Path(tmp)
        sb.run(_request(root, 0, ["true"], run_id))  # warm the client and the page cache
        times = []
        for i in range(n):
            started = time.perf_counter()
            result = sb.run(_request(root, i, ["true"], run_id))
            times.append(time.perf_counter() - started)
            if result.exit_code != 0:
                raise SandboxError(f"`true` in the sandbox ended with {result.exit_code} ({result.reason})")
        loop = f'for i in $(seq {n}); do "{docker_cli}" run --rm --network none {config.image} true || exit 1; done'
        started = time.perf_counter()
        subprocess.run(["bash", "-c", loop], check=True, capture_output=True)
        baseline = (time.perf_counter() - started) / n
    sandbox_s = statistics.mean(times)
    figures = {"n": n, "sandbox_s": round(sandbox_s, 4), "sandbox_p50_s": round(statistics.median(times), 4),
               "sandbox_max_s": round(max(times), 4), "docker_run_s": round(baseline, 4),
               "ratio": round(sandbox_s / baseline, 3)}
    print(f"docker attempt overhead: sandbox {sandbox_s * 1000:.0f} ms/attempt vs `docker run --rm` "
          f"{baseline * 1000:.0f} ms (ratio {figures['ratio']:.2f}, n={n})")
    return figures


def bench_parallel_start(n: int = 100, config: DockerSandboxConfig | None = None) -> dict:
    """Bring n sandboxes up at once through a thread pool of n workers; each runs a
    command that holds until all have started, so every container is up together."""
    config = config or DockerSandboxConfig()
    sb = _sandbox(config)
    run_id = f"perfpar{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="harness-perf-") as tmp:
        root = Path(tmp)
        gate = root / "gate"
        gate.mkdir()
        # Each attempt marks itself started in a shared dir, then runs until the gate opens.
        # The gate dir is the harness dir of every attempt, read-only inside: the host opens it.
        reqs = []
        for i in range(n):
            req = _request(root, i, ["sh", "-c", "touch started; while [ ! -e /harness/open ]; do sleep 0.1; done"],
                           run_id)
            reqs.append(req.model_copy(update={"harness_dir": gate}))
        started_at = time.perf_counter()
        all_up = None
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures = [pool.submit(sb.run, req) for req in reqs]
            while all_up is None:
                if sum((req.workspace / "started").exists() for req in reqs) == n:
                    all_up = time.perf_counter() - started_at
                elif any(f.done() for f in futures):
                    break  # one ended early: it failed; its result says why
                else:
                    time.sleep(0.05)
            (gate / "open").touch()
            results = [f.result() for f in futures]
        total = time.perf_counter() - started_at
    failed = [r for r in results if r.exit_code != 0]
    if failed:
        raise SandboxError(f"{len(failed)} of {n} parallel sandboxes failed, e.g. {failed[0].reason or failed[0].exit_code}: "
                           f"{failed[0].output_tail[-200:]}")
    figures = {"n": n, "all_up_s": round(all_up, 3), "total_s": round(total, 3),
               "per_sandbox_ms": round(all_up / n * 1000, 1)}
    print(f"docker parallel start: {n} sandboxes up together in {all_up:.1f}s "
          f"({figures['per_sandbox_ms']:.0f} ms each), all done in {total:.1f}s")
    return figures


if __name__ == "__main__":
    import sys

    bench_attempt_overhead(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    bench_parallel_start(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
