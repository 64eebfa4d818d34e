"""Helpers for sandbox tests: backends by name, requests in temp dirs, and the docker
gate (skip without a daemon, but fail under CI=true, where docker must be up)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from harness.config import DockerSandboxConfig, LocalSandboxConfig
from harness.records import SandboxRequest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@functools.cache
def docker_unavailable() -> str | None:
    """Why the docker sandbox cannot run here, or None when it can."""
    from harness.errors import SandboxUnavailable

    try:
        from harness.sandbox.docker import DockerSandbox

        DockerSandbox(DockerSandboxConfig()).check()
    except SandboxUnavailable as exc:
        return str(exc)
    except ImportError as exc:
        return f"docker backend not importable: {exc}"
    return None


def require_docker() -> None:
    """Skip when the docker sandbox cannot run; under CI=true, fail instead."""
    reason = docker_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the docker sandbox is unavailable: {reason}", pytrace=False)
    pytest.skip(f"docker sandbox unavailable: {reason}")


def make_sandbox(kind: str, **docker_options):
    from harness.sandbox import get_sandbox

    if kind == "docker":
        require_docker()
        return get_sandbox(DockerSandboxConfig(**docker_options))
    return get_sandbox(LocalSandboxConfig())


def make_request(tmp_path: Path, command: list[str], *, timeout_s: float = 30, env: dict | None = None,
                 labels: dict | None = None, workspace: Path | None = None, **limits) -> SandboxRequest:
    """A request with a fresh workspace and harness dir (holding task.json) under tmp_path."""
    if workspace is None:
        workspace = tmp_path / "workspace"
        workspace.mkdir(exist_ok=True)
    harness_dir = tmp_path / "harness"
    harness_dir.mkdir(exist_ok=True)
    (harness_dir / "task.json").write_text(json.dumps({"id": "t1", "prompt": "test"}))
    return SandboxRequest(workspace=workspace, harness_dir=harness_dir, command=command,
                          env=env or {}, timeout_s=timeout_s, log_path=tmp_path / "logs" / "attempt.log",
                          labels=labels or {}, **limits)
