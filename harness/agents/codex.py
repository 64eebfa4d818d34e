"""The codex adapter (skeleton: its run() is being written)."""

from __future__ import annotations

from ..config import CliAgentConfig
from ..sandbox.agentimage import AgentPackage


class CodexAgent:
    name = "codex"
    package = AgentPackage(agent="codex", registry="npm", package="@openai/codex", version="0.171.0", bin="codex")

    def __init__(self, config: CliAgentConfig) -> None:
        self.config = config
