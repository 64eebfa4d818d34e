"""The agent seam: an Agent does one task in a sandbox; the harness commits after.

A structural protocol, so a test double or a new adapter needs no inheritance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from ..records import SandboxResult, TaskSpec
from ..sandbox.base import Sandbox


@runtime_checkable
class Agent(Protocol):
    name: str

    def run(self, spec: TaskSpec, sandbox: Sandbox, workspace: Path, harness_dir: Path,
            log_path: Path) -> SandboxResult:
        """Do the task in the workspace through the sandbox; the harness commits after."""
