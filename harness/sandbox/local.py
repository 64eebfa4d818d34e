"""The local sandbox: the command runs as a subprocess in its worktree.

It does not isolate anything: no network, filesystem or resource limits. It exists
for machines without Docker and for fast tests; choosing it is an explicit opt-in.

What it does guarantee is that nothing the command started outlives the attempt, as
a container's end does in the docker sandbox. Two independent nets, because each
alone has a hole an agent can reach with one shell line:

- the command runs under a keeper (`_reap.py`) that is a child subreaper: every
  descendant stays its descendant through `setsid`, double forks and cleared
  environments, and the keeper kills and reaps them all before it exits;
- the keeper could itself be killed by the agent (it is the agent's parent, same
  user), so every process also carries a per-attempt tag in its environment, and the
  harness kills its process group and every process with the tag afterwards. Only
  a process that both escaped a killed keeper and cleared its environment is missed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from ..config import LocalSandboxConfig
from ..records import SandboxRequest, SandboxResult
from .base import ModelRoute
from .output import OutputWatch

_KEEPER = str(Path(__file__).with_name("_reap.py"))
TAG_VAR = "HARNESS_SANDBOX_TAG"
"""Environment variable holding the attempt's tag, inherited by all it starts."""


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

    def open_model_route(self, run_id: str) -> ModelRoute:
        """The gateway on the loopback, where local agents reach it. Not enforced
        locally: a local agent reaches every address the host does."""
        return ModelRoute(bind_host="127.0.0.1", agent_host="127.0.0.1", network=None)

    def seal_model_route(self, run_id: str, port: int) -> None:
        """Nothing to seal: not enforced locally (the agent is a host process)."""

    def close_model_route(self, run_id: str) -> None:
        """Nothing to close: not enforced locally."""

    def run(self, req: SandboxRequest) -> SandboxResult:
        tag = uuid.uuid4().hex
        env = dict(os.environ)
        env.update(req.env)
        env.update(
            HARNESS_WORKSPACE=str(req.workspace),
            HARNESS_DIR=str(req.harness_dir),
            HARNESS_TASK_FILE=str(req.harness_dir / "task.json"),
        )
        env[TAG_VAR] = tag
        req.log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        with open(req.log_path, "ab") as log:
            proc, why_not = _start(req, env)
            if why_not is not None:
                log.write(f"harness: cannot start {req.command[0]!r}: {why_not}\n".encode())
                return SandboxResult(exit_code=None, duration_s=time.monotonic() - start,
                                     reason="start_failed", output_tail=why_not)
            assert proc is not None and proc.stdout is not None
            watch = OutputWatch(log, stall_s=req.stall_s, max_steps=req.max_steps,
                                max_log_bytes=req.max_log_bytes, on_stop=lambda: _end(proc, tag))
            done = threading.Event()

            def watchdog() -> None:
                deadline = start + req.timeout_s
                poll = watch.poll_s(req.timeout_s)
                while not done.wait(max(0.0, min(poll, deadline - time.monotonic()))):
                    why = "timeout" if time.monotonic() >= deadline else "stalled" if watch.stalled() else None
                    if why and watch.stop(why):
                        _end(proc, tag)
                    if watch.stopped:
                        return

            dog = threading.Thread(target=watchdog, daemon=True)
            dog.start()
            try:
                # The keeper holds stdout until it has killed everything the command
                # started, and a stop kills the keeper's tree, so this loop ends.
                for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                    watch.feed(chunk)
                watch.finish()
                code = proc.wait()
            finally:
                done.set()
                dog.join()
                _end(proc, tag)  # nothing the agent started outlives the attempt
                proc.stdout.close()
                watch.close()
        duration = time.monotonic() - start
        common = dict(duration_s=duration, output_tail=watch.tail(), steps=watch.steps, trace=watch.trace)
        if watch.stopped:
            return SandboxResult(exit_code=None, timed_out=watch.stopped == "timeout", reason=watch.stopped,
                                 **common)
        reason = f"signal {-code}" if code < 0 else None
        return SandboxResult(exit_code=code if code >= 0 else None, reason=reason, **common)


def kill_marked(prefix: bytes) -> list[int]:
    """SIGKILL every process whose environment has an entry starting with `prefix`
    (this process aside), scanning again until none is left (a process may fork
    between two scans). Returns their pids."""
    me, killed = os.getpid(), []
    for _ in range(50):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    env = fh.read()
            except OSError:
                continue  # gone, or not ours to read
            if any(item.startswith(prefix) for item in env.split(b"\0")):
                found = True
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    pass
        if not found:
            break
        time.sleep(0.01)
    return sorted(set(killed))


def _start(req: SandboxRequest, env: dict[str, str]) -> tuple[subprocess.Popen | None, str | None]:
    """Start the keeper with the command; (process, None), or (None, why it did not start)."""
    status_r, status_w = os.pipe()
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", _KEEPER, str(status_w), "--", *req.command], cwd=req.workspace,
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, pass_fds=(status_w,),
            )
        except OSError as exc:
            return None, str(exc)
        finally:
            os.close(status_w)
        status = b""
        while chunk := os.read(status_r, 4096):
            status += chunk
    finally:
        os.close(status_r)
    if status == b"ok\n":
        return proc, None
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    return None, status.decode("utf-8", "replace").strip() or "the sandbox keeper died"


def _end(proc: subprocess.Popen, tag: str) -> None:
    """Stop the attempt: the keeper kills and reaps the command's whole tree; then,
    in case the agent killed the keeper, its process group and every tagged process."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    _kill_group(proc.pid)
    _kill_tagged(tag)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tagged(tag: str) -> None:
    """SIGKILL every process whose environment holds the attempt's tag."""
    kill_marked(f"{TAG_VAR}={tag}".encode())
