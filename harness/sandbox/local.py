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
from pathlib import Path

from ..config import LocalSandboxConfig
from ..schema import SandboxRequest, SandboxResult
from .output import OutputWatch


class LocalSandbox:
    name = "local"
    isolates = False

    def __init__(self, config: LocalSandboxConfig | None = None) -> None:
        self.config = config or LocalSandboxConfig()

    def check(self) -> None:
        return None

    def cleanup(self, run_id: str | None = None, run_dir: Path | None = None) -> list[str]:
        return []

    def stop(self, run_id: str, run_dir: Path) -> list[str]:
        """Kill the processes of a run, found by `HARNESS_DIR=<run_dir>/...` in their
        environment (set for every attempt and gate run), including those a harness
        process that is gone left behind. An agent that scrubs its environment
        escapes this: the local sandbox isolates nothing, as said above."""
        return [str(pid) for pid in kill_marked(f"HARNESS_DIR={run_dir}/".encode())]

    def run(self, req: SandboxRequest) -> SandboxResult:
        env = dict(os.environ)
        env.update(req.env)
        env.update(
            HARNESS_WORKSPACE=str(req.workspace),
            HARNESS_DIR=str(req.harness_dir),
            HARNESS_TASK_FILE=str(req.harness_dir / "task.json"),
        )
        req.log_path.parent.mkdir(parents=True, exist_ok=True)
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
            watch = OutputWatch(log, stall_s=req.stall_s, max_steps=req.max_steps,
                                on_stop=lambda: _kill_group(proc.pid))
            done = threading.Event()

            def watchdog() -> None:
                deadline = start + req.timeout_s
                poll = watch.poll_s(req.timeout_s)
                while not done.wait(max(0.0, min(poll, deadline - time.monotonic()))):
                    why = "timeout" if time.monotonic() >= deadline else "stalled" if watch.stalled() else None
                    if why and watch.stop(why):
                        _kill_group(proc.pid)
                    if watch.stopped:
                        return

            dog = threading.Thread(target=watchdog, daemon=True)
            dog.start()
            try:
                assert proc.stdout is not None
                # A killed group closes the pipe, so this loop ends when the command is
                # stopped too, even when a grandchild kept stdout open.
                for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                    watch.feed(chunk)
                watch.finish()
                code = proc.wait()
            finally:
                done.set()
                dog.join()
                _kill_group(proc.pid)  # nothing the agent started outlives the attempt
        duration = time.monotonic() - start
        common = dict(duration_s=duration, output_tail=watch.tail(), steps=watch.steps, trace=watch.trace)
        if watch.stopped:
            return SandboxResult(exit_code=None, timed_out=watch.stopped == "timeout", reason=watch.stopped,
                                 **common)
        reason = f"signal {-code}" if code < 0 else None
        return SandboxResult(exit_code=code if code >= 0 else None, reason=reason, **common)


def kill_marked(prefix: bytes) -> list[int]:
    """SIGKILL every process whose environment has an entry starting with `prefix`,
    except this process. Returns their pids."""
    me, killed = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue  # gone, or not ours to read
        if any(item.startswith(prefix) for item in env.split(b"\0")):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
