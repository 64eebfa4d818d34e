"""The agent seam: an Agent does one task in a sandbox; the harness commits after.

A structural protocol, so a test double or a new adapter needs no inheritance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from ..records import SandboxRequest, SandboxResult, TaskSpec
from ..sandbox.base import Sandbox
from ..sandbox.output import STEP_MARK


@runtime_checkable
class Agent(Protocol):
    name: str

    def run(self, spec: TaskSpec, sandbox: Sandbox, workspace: Path, harness_dir: Path,
            log_path: Path) -> SandboxResult:
        """Do the task in the workspace through the sandbox; the harness commits after."""


def task_request(spec: TaskSpec, command: list[str], workspace: Path, harness_dir: Path,
                 log_path: Path) -> SandboxRequest:
    """The sandbox request of an agent's command: the task's essentials in the
    environment (the whole spec is at $HARNESS_TASK_FILE), its budgets and labels."""
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
    return SandboxRequest(
        workspace=workspace, harness_dir=harness_dir, command=command,
        env=env, timeout_s=spec.budget.timeout_s, log_path=log_path,
        labels={"harness.run": spec.run_id, "harness.task": spec.task_id,
                "harness.attempt": str(spec.attempt)},
        stall_s=spec.budget.stall_s, max_steps=spec.budget.steps,
        max_log_bytes=spec.budget.log_bytes,
    )
