"""Agents in sandbox images: what an agent adapter needs installed in its image.

An adapter (harness/agents/) declares an AgentPackage; `harness image build NAME
--with AGENT` installs it on top of the offline-built image, reaching the package
registries the way the host does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AgentPackage:
    """One agent CLI as its registry ships it, pinned."""

    agent: str
    """The agent type that needs it (its config's `type`), e.g. "codex"."""
    registry: Literal["npm", "pypi"]
    package: str
    """The package's name on its registry, e.g. "@openai/codex"."""
    version: str
    """The pinned version: headless flags and event formats change between versions."""
    bin: str
    """The command it puts on PATH, e.g. "codex"."""

    @property
    def needs_node(self) -> bool:
        return self.registry == "npm"

    @property
    def spec(self) -> str:
        """What the registry's client installs: `name@version` or `name==version`."""
        return f"{self.package}@{self.version}" if self.registry == "npm" else f"{self.package}=={self.version}"
