"""The command agent: any command (a script or a CLI coding agent) in the sandbox.

The task spec is at $HARNESS_TASK_FILE (JSON); the essentials are also in the
environment so a one-line shell command can use them. A line the command prints
starting with $HARNESS_STEP_MARK announces a step (the attempt's tool trace,
counted against the plan's max_steps).
"""

from __future__ import annotations

from pathlib import Path

from ..config import CommandAgentConfig
from ..errors import UsageError
from ..records import SandboxResult, TaskSpec
from ..sandbox.base import Sandbox
from .base import task_request


class CommandAgent:
    name = "command"

    def __init__(self, config: CommandAgentConfig) -> None:
        self.config = config

    def run(self, spec: TaskSpec, sandbox: Sandbox, workspace: Path, harness_dir: Path,
            log_path: Path) -> SandboxResult:
        command = self.config.command
        if not command:
            raise UsageError(f"task {spec.task_id!r}: the command agent needs a command")
        return sandbox.run(task_request(spec, ["sh", "-c", command], workspace, harness_dir, log_path))
