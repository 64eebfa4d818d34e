"""The claude-code adapter (skeleton: its run() is being written)."""

from __future__ import annotations

from ..config import CliAgentConfig
from ..sandbox.agentimage import AgentPackage


class ClaudeCodeAgent:
    name = "claude-code"
    package = AgentPackage(agent="claude-code", registry="npm", package="@anthropic-ai/claude-code", version="2.1.197", bin="claude")

    def __init__(self, config: CliAgentConfig) -> None:
        self.config = config
