"""Fixtures for tests against the real Docker daemon. Every test here is marked
`docker`: without a daemon it skips, and under CI=true it fails instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxutil import require_docker


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def docker_daemon():
    """The SDK client of a reachable daemon with the sandbox image present."""
    require_docker()
    from harness.sandbox.docker import docker_client

    return docker_client()


@pytest.fixture
def run_id(request) -> str:
    """A run id unique to this test, so parallel tests never see each other's containers."""
    import uuid

    return f"t{uuid.uuid4().hex[:10]}"
