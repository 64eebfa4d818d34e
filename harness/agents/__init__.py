"""Agents by type: the one registry. An agent does one task through a sandbox; the
harness commits after. A new agent is one module here plus one line in `AGENTS`
(and its config model in `harness.config`). Adapters are imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import AgentConfig
    from .base import Agent

AGENTS: dict[str, tuple[str, str]] = {
    "command": ("harness.agents.command", "CommandAgent"),
    "builtin": ("harness.agents.builtin", "BuiltinAgent"),
    "claude-code": ("harness.agents.claude_code", "ClaudeCodeAgent"),
    "codex": ("harness.agents.codex", "CodexAgent"),
    "aider": ("harness.agents.aider", "AiderAgent"),
    "mini-swe-agent": ("harness.agents.mini_swe_agent", "MiniSweAgent"),
    "opencode": ("harness.agents.opencode", "OpencodeAgent"),
}
"""type -> (module, class) of each agent; the type is its config's `type`."""


def get_agent(config: AgentConfig) -> Agent:
    """The agent for an agent config. Raises UsageError for an unknown type."""
    from ..errors import UsageError

    try:
        module, cls = AGENTS[config.type]
    except KeyError:
        raise UsageError(f"unknown agent {config.type!r}; known: {', '.join(AGENTS)}") from None
    return agent_class(config.type)(config)


def agent_class(type_: str) -> type:
    """The adapter class of an agent type (its `package`, when it has one, is what an
    image needs installed for it). Raises KeyError for an unknown type."""
    module, cls = AGENTS[type_]
    return getattr(importlib.import_module(module), cls)
