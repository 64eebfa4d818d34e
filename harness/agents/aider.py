"""The aider adapter (skeleton: its run() is being written)."""

from __future__ import annotations

from ..config import CliAgentConfig
from ..sandbox.agentimage import AgentPackage


class AiderAgent:
    name = "aider"
    package = AgentPackage(agent="aider", registry="pypi", package="aider-chat", version="0.86.2", bin="aider")

    def __init__(self, config: CliAgentConfig) -> None:
        self.config = config
