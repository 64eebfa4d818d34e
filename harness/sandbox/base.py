"""The sandbox seam: a Sandbox runs commands (an Agent does its task in one).

A structural protocol, so a test double or a new backend needs no inheritance.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from ..records import SandboxRequest, SandboxResult


class ModelRoute(NamedTuple):
    """Where a run's model gateway listens and how its agents reach it."""

    bind_host: str
    """The host address the gateway binds (port 0: any free one)."""
    agent_host: str
    """The gateway's address as an agent inside this backend's sandbox sees it."""
    network: str | None
    """The network the run's sandboxes join instead of their configured one
    (`SandboxRequest.model_network`); None: they stay where they are."""


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
        """Prepare the way from the run's sandboxes to its model gateway (before the
        gateway starts) and say where the gateway binds. Raises SandboxError when it
        cannot."""

    def seal_model_route(self, run_id: str, port: int) -> None:
        """The gateway listens on `port` of the route's bind host: let the run's
        sandboxes reach that port and nothing else of the host."""

    def close_model_route(self, run_id: str) -> None:
        """Undo `open_model_route` (the run ended, was cancelled or crashed).
        Idempotent: closing a route that is not open does nothing."""
