"""Sandbox backends by short name. Backends are imported only when used."""

from __future__ import annotations

import importlib

from ..config import DockerSandboxConfig, LocalSandboxConfig
from ..errors import UsageError
from .base import Sandbox

_BACKENDS = {
    "local": ("harness.sandbox.local", "LocalSandbox"),
    "docker": ("harness.sandbox.docker", "DockerSandbox"),
}

NAMES = tuple(_BACKENDS)


def get_sandbox(config: LocalSandboxConfig | DockerSandboxConfig) -> Sandbox:
    """The backend for a sandbox config. Raises UsageError for an unknown type."""
    try:
        module, cls = _BACKENDS[config.type]
    except KeyError:
        raise UsageError(f"unknown sandbox {config.type!r}; known: {', '.join(_BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)(config)
