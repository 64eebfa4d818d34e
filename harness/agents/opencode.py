"""The opencode adapter (skeleton: its run() is being written)."""

from __future__ import annotations

from ..config import CliAgentConfig
from ..sandbox.agentimage import AgentPackage


class OpencodeAgent:
    name = "opencode"
    package = AgentPackage(agent="opencode", registry="npm", package="opencode-ai", version="1.18.33", bin="opencode")

    def __init__(self, config: CliAgentConfig) -> None:
        self.config = config
