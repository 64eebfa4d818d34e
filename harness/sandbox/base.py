"""The sandbox seam: a Sandbox runs commands (an Agent does its task in one).

A structural protocol, so a test double or a new backend needs no inheritance.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from ..records import SandboxRequest, SandboxResult


class ModelRoute(NamedTuple):
    """How a run's gateway and its sandboxes meet (see `Sandbox.open_model_route`)."""

    bind_host: str
    """Where the run's gateway must listen on the host."""
    agent_host: str
    """The address the backend's sandboxes use to reach it."""
    network: str | None
    """docker: the run's internal network its sandboxes join (`SandboxRequest.model_network`);
    None for local."""


@runtime_checkable
class Sandbox(Protocol):
    name: str
    """Short name: "local", "docker"."""
    isolates: bool
    """Whether the agent is kept from the host (network, files, limits)."""

    def check(self) -> None:
        """Raise SandboxUnavailable when this backend cannot run at all."""

    def run(self, req: SandboxRequest) -> SandboxResult:
        """Run one command to its end or its timeout. A failing command is a result;
        only the harness's own breakage raises (SandboxError)."""

    def cleanup(self, run_id: str | None = None, run_dir: Path | None = None) -> list[str]:
        """Remove what earlier runs left behind, found by label (and, with `run_dir`,
        by the run's store it mounts); return what was removed."""

    def stop(self, run_id: str, run_dir: Path) -> list[str]:
        """Kill every live command of the run whose store is `run_dir` (a container by
        its run label and the harness dir it mounts, a local process by the harness dir
        in its environment), whoever started it; a `run` call waiting on one returns.
        Returns what was stopped."""

    def open_model_route(self, run_id: str) -> ModelRoute:
        """Prepare the one way from the run's sandboxes to its model gateway; called
        before the gateway starts, which then listens on `bind_host`. Until sealed,
        nothing is reachable through it. Raises SandboxUnavailable when the backend
        cannot fence the route (it never leaves the host open instead)."""

    def seal_model_route(self, run_id: str, port: int) -> None:
        """After the gateway bound `port` on `bind_host`: from the run's sandboxes,
        nothing but that port is reachable. Raises SandboxUnavailable, SandboxError."""

    def close_model_route(self, run_id: str) -> None:
        """Remove the run's route and everything it put in place; at run end and in
        cleanup/stop. Idempotent."""
