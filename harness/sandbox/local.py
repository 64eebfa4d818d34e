"""The local sandbox: the command runs as a subprocess in its worktree.

It does not isolate anything: no network, filesystem or resource limits. It exists
for machines without Docker and for fast tests; choosing it is an explicit opt-in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque

from ..config import LocalSandboxConfig
from ..schema import SandboxRequest, SandboxResult

TAIL_BYTES = 4096


class LocalSandbox:
    name = "local"
    isolates = False

    def __init__(self, config: LocalSandboxConfig | None = None) -> None:
        self.config = config or LocalSandboxConfig()

    def check(self) -> None:
        return None

    def cleanup(self, run_id: str | None = None) -> list[str]:
        return []

    def run(self, req: SandboxRequest) -> SandboxResult:
        env = dict(os.environ)
        env.update(req.env)
        env.update(
            HARNESS_WORKSPACE=str(req.workspace),
            HARNESS_DIR=str(req.harness_dir),
            HARNESS_TASK_FILE=str(req.harness_dir / "task.json"),
        )
        req.log_path.parent.mkdir(parents=True, exist_ok=True)
        tail: deque[bytes] = deque()
        tail_size = 0
        start = time.monotonic()
        with open(req.log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    req.command, cwd=req.workspace, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                log.write(f"harness: cannot start {req.command[0]!r}: {exc}\n".encode())
                return SandboxResult(exit_code=None, duration_s=time.monotonic() - start,
                                     reason="start_failed", output_tail=str(exc))
            fired = threading.Event()

            def expire() -> None:
                fired.set()
                _kill_group(proc.pid)

            timer = threading.Timer(req.timeout_s, expire)
            timer.daemon = True
            timer.start()
            try:
                assert proc.stdout is not None
                # A killed group closes the pipe, so this loop ends at the timeout too,
                # even when a grandchild kept stdout open.
                for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                    log.write(chunk)
                    log.flush()
                    tail.append(chunk)
                    tail_size += len(chunk)
                    while tail_size - len(tail[0]) >= TAIL_BYTES:
                        tail_size -= len(tail.popleft())
                code = proc.wait()
            finally:
                timer.cancel()
                _kill_group(proc.pid)  # nothing the agent started outlives the attempt
        duration = time.monotonic() - start
        text = b"".join(tail)[-TAIL_BYTES:].decode("utf-8", "replace")
        if fired.is_set():
            return SandboxResult(exit_code=None, duration_s=duration, timed_out=True,
                                 reason="timeout", output_tail=text)
        reason = f"signal {-code}" if code < 0 else None
        return SandboxResult(exit_code=code if code >= 0 else None, duration_s=duration,
                             reason=reason, output_tail=text)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
