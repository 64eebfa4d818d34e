"""The built-in agent: a small tool-calling loop (`builtin_loop.py`) run in the sandbox.

The loop is one standard-library file, copied into the attempt's harness dir and run
with the sandbox's python3 in the worktree, so any image with Python runs it. It
talks only to the run's model gateway. After it ends, this side gathers its
trajectory from the attempt's log into `trajectory.jsonl` in the harness dir (the
docker sandbox mounts that dir read-only, so the loop cannot write it there) and
turns its exit code into a reason that says how the model failed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..config import BuiltinAgentConfig
from ..records import SandboxResult, TaskSpec
from ..sandbox.base import Sandbox
from ..sandbox.output import TRUNCATION_MARK
from . import builtin_loop as loop
from .base import task_request

LOOP_FILE = "builtin_loop.py"
"""The loop's name in the attempt's harness dir."""
TRAJECTORY_FILE = "trajectory.jsonl"
"""In the attempt's harness dir: the loop's messages, tool results and how it ended, one JSON a line."""

REASONS = {
    loop.EXIT_USAGE: "builtin agent: cannot start",
    loop.EXIT_MAX_TURNS: "max turns reached",
    loop.EXIT_MALFORMED: "model error: malformed tool call",
    loop.EXIT_MODEL_ERROR: "model error",
    loop.EXIT_CONTEXT_LENGTH: "model refused: context length",
    loop.EXIT_REFUSED: "model refused",
    loop.EXIT_INTERNAL: "builtin agent: internal error",
}
"""The loop's failure exit codes and the start every reason with that code has."""


class BuiltinAgent:
    name = "builtin"

    def __init__(self, config: BuiltinAgentConfig) -> None:
        self.config = config

    def run(self, spec: TaskSpec, sandbox: Sandbox, workspace: Path, harness_dir: Path,
            log_path: Path) -> SandboxResult:
        shutil.copyfile(Path(loop.__file__), harness_dir / LOOP_FILE)
        command = ["sh", "-c", f'exec python3 "$HARNESS_DIR/{LOOP_FILE}"']
        res = sandbox.run(task_request(spec, command, workspace, harness_dir, log_path))
        end = keep_trajectory(log_path, harness_dir / TRAJECTORY_FILE)
        if res.reason is None and res.exit_code in REASONS:
            res = res.model_copy(update={"reason": failure_reason(res.exit_code, end, res.output_tail)})
        return res


def keep_trajectory(log_path: Path, out: Path) -> dict | None:
    """Copy the loop's trajectory lines from the attempt's log to `out`; return its
    `end` event, if it got that far. A log cut at its cap says so in a last event."""
    mark = loop.TRAJECTORY_MARK.encode() + b" "
    end = None
    cut = False
    try:
        with open(log_path, "rb") as log, open(out, "wb") as fh:
            for line in log:
                if line.startswith(mark):
                    body = line[len(mark):].rstrip(b"\n")
                    fh.write(body + b"\n")
                    if b'"event": "end"' in body:
                        try:
                            end = json.loads(body)
                        except ValueError:
                            pass
                elif line.startswith(TRUNCATION_MARK):
                    cut = True
            if cut:
                fh.write(json.dumps({"event": "cut", "detail": "the attempt's log reached its cap; "
                                     "later events were not kept"}).encode() + b"\n")
    except OSError:
        return None
    return end if isinstance(end, dict) else None


def failure_reason(code: int, end: dict | None, tail: str) -> str:
    """The reason of a failed loop: its own line (from its end event, else the last
    `harness-builtin:` line of its output) when it starts as its exit code says,
    else what that code means."""
    expected = REASONS[code]
    lines = [str(end.get("detail"))] if end and end.get("exit") == code else []
    lines += [ln.split(loop.ERROR_MARK, 1)[1].strip() for ln in reversed(tail.splitlines())
              if ln.startswith(loop.ERROR_MARK)]
    prefix = "builtin agent:" if code == loop.EXIT_USAGE else expected
    for line in lines:
        if line.startswith(prefix):
            return line[:500]
    return expected
