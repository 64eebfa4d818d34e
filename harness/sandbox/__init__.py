"""Sandbox backends by short name: the one registry, and the one override.

A new backend is one new module here plus one line in `BACKENDS` (and its config
model in `harness.config`). Everything that offers or picks a backend by name (the
CLI's `--sandbox`, a plan, a bench spec, the gate, reaping a run) reads `NAMES`
or calls `get_sandbox` / `sandbox_override`, never a list of its own.

This module imports nothing heavy, so the CLI can list the names while it starts;
backends (docker, ...) are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import SandboxConfig
    from .base import Sandbox

BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("harness.sandbox.local", "LocalSandbox"),
    "docker": ("harness.sandbox.docker", "DockerSandbox"),
}
"""name -> (module, class) of each backend; the name is its config's `type`."""

NAMES = tuple(BACKENDS)
"""The backend names, in the order the CLI offers them."""


def _unknown(name: str) -> str:
    return f"unknown sandbox {name!r}; known: {', '.join(NAMES)}"


def get_sandbox(config: SandboxConfig) -> Sandbox:
    """The backend for a sandbox config. Raises UsageError for an unknown type."""
    from ..errors import UsageError

    try:
        module, cls = BACKENDS[config.type]
    except KeyError:
        raise UsageError(_unknown(config.type)) from None
    return getattr(importlib.import_module(module), cls)(config)


def default_config(name: str) -> SandboxConfig:
    """The config of backend `name` with every setting at its default. Raises
    UsageError for an unknown name."""
    from pydantic import TypeAdapter

    from ..config import SandboxConfig
    from ..errors import UsageError

    if name not in BACKENDS:
        raise UsageError(_unknown(name))
    return TypeAdapter(SandboxConfig).validate_python({"type": name})


def sandbox_override(current: SandboxConfig, name: str | None) -> SandboxConfig:
    """What `--sandbox NAME` makes of a configured sandbox: unchanged when `name` is
    None or its own type (its settings kept), else backend `name` at its defaults.
    Raises UsageError for an unknown name."""
    if name is None or name == current.type:
        return current
    return default_config(name)
