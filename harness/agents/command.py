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
from ..records import SandboxRequest, SandboxResult, TaskSpec
from ..sandbox.base import Sandbox
from ..sandbox.output import STEP_MARK


class CommandAgent:
    name = "command"

    def __init__(self, config: CommandAgentConfig) -> None:
        self.config = config

    def run(self, spec: TaskSpec, sandbox: Sandbox, workspace: Path, harness_dir: Path,
            log_path: Path) -> SandboxResult:
        command = self.config.command
        if not command:
            raise UsageError(f"task {spec.task_id!r}: the command agent needs a command")
        env = {
            **spec.env,
            "HARNESS_RUN": spec.run_id,
            "HARNESS_TASK": spec.task_id,
            "HARNESS_ATTEMPT": str(spec.attempt),
            "HARNESS_PROMPT": spec.prompt,
            "HARNESS_STEP_MARK": STEP_MARK.decode(),
        }
        if spec.strategy:
            env["HARNESS_STRATEGY"] = spec.strategy
        req = SandboxRequest(
            workspace=workspace, harness_dir=harness_dir, command=["sh", "-c", command],
            env=env, timeout_s=spec.budget.timeout_s, log_path=log_path,
            labels={"harness.run": spec.run_id, "harness.task": spec.task_id,
                    "harness.attempt": str(spec.attempt)},
            stall_s=spec.budget.stall_s, max_steps=spec.budget.steps,
            max_log_bytes=spec.budget.log_bytes,
        )
        return sandbox.run(req)
