"""Agents by type. An agent does one task through a sandbox; the harness commits."""

from __future__ import annotations

from ..config import CommandAgentConfig
from .base import Agent


def get_agent(config: CommandAgentConfig) -> Agent:
    from .command import CommandAgent

    return CommandAgent(config)
