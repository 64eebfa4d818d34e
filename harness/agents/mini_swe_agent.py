"""The mini-swe-agent adapter (skeleton: its run() is being written)."""

from __future__ import annotations

from ..config import CliAgentConfig
from ..sandbox.agentimage import AgentPackage


class MiniSweAgent:
    name = "mini-swe-agent"
    package = AgentPackage(agent="mini-swe-agent", registry="pypi", package="mini-swe-agent", version="2.4.6", bin="mini")

    def __init__(self, config: CliAgentConfig) -> None:
        self.config = config
