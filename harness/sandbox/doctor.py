"""`harness doctor`: what this machine has and what earlier runs left behind.

Every check returns data (a Check); nothing here raises for a missing tool or a
daemon that is down, since reporting those is the point.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import images

MIN_FREE_GIB = 5.0


class Check(BaseModel):
    """One line of the doctor's report."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    """What was found."""
    fix: str | None = None
    """How to fix it, when it is not ok."""
    items: list[str] = []
    """What a check found in numbers: leftover containers, worktrees."""


def doctor(repo: Path | None = None) -> list[Check]:
    """Run every check. With a repo, also list its leftover `harness/*` worktrees."""
    checks = [_git(), _pygit2()]
    daemon = _daemon()
    checks.append(daemon)
    if daemon.status == "ok":
        checks += _images()
        checks.append(_containers())
    checks.append(_disk(repo or Path.cwd()))
    if repo is not None:
        checks.append(_worktrees(repo))
    return checks


def _git() -> Check:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return Check(name="git", status="fail", detail="git not found", fix="apt-get install git")
    return Check(name="git", status="ok", detail=out.strip().removeprefix("git version "))


def _pygit2() -> Check:
    try:
        import pygit2
    except ImportError:
        return Check(name="pygit2", status="fail", detail="not importable", fix="pip install pygit2")
    return Check(name="pygit2", status="ok", detail=f"{pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION})")


def _daemon() -> Check:
    try:
        from .docker import docker_client

        version = docker_client().version()
    except Exception as exc:  # any failure here is the finding
        text = str(exc).strip().splitlines()
        return Check(name="docker daemon", status="fail", detail=text[0] if text else type(exc).__name__,
                     fix="run scripts/lib/docker-up.sh (as root), or use --sandbox local")
    return Check(name="docker daemon", status="ok",
                 detail=f"{version.get('Version')} (API {version.get('ApiVersion')})")


def _images() -> list[Check]:
    checks = []
    for name in images.available():
        tag = images.image_tag(name)
        found = images.image_id(name)
        if found:
            checks.append(Check(name=f"image {name}", status="ok", detail=f"{tag} {found[:19]}"))
        else:
            checks.append(Check(name=f"image {name}", status="fail", detail=f"{tag} absent",
                                fix=f"harness image build {name}"))
    return checks


def _containers() -> Check:
    from .docker import RUN_LABEL, docker_client

    found = docker_client().containers.list(all=True, filters={"label": RUN_LABEL}, ignore_removed=True)
    items = [f"{c.name} run={c.labels.get(RUN_LABEL)} {c.status}" for c in found]
    stopped = [c for c in found if c.status not in ("running", "restarting", "paused")]
    if not found:
        return Check(name="leftover containers", status="ok", detail="none")
    return Check(name="leftover containers", status="warn" if stopped else "ok",
                 detail=f"{len(found)} labelled {RUN_LABEL} ({len(stopped)} stopped)",
                 fix="harness cleanup" if stopped else None, items=items)


def _disk(path: Path) -> Check:
    usage = shutil.disk_usage(path if path.exists() else Path.cwd())
    free = usage.free / 2**30
    detail = f"{free:.1f} GiB free at {path}"
    if free < MIN_FREE_GIB:
        return Check(name="disk", status="warn", detail=detail,
                     fix="each attempt needs a worktree and a container layer; free some space")
    return Check(name="disk", status="ok", detail=detail)


def harness_worktrees(repo: Path) -> list[tuple[Path, str]]:
    """(path, branch) of the repo's worktrees on `harness/*` branches, from
    `git worktree list --porcelain`."""
    out = subprocess.run(["git", "-C", str(repo), "worktree", "list", "--porcelain"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return []
    found, path = [], None
    for line in out.stdout.splitlines():
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree "))
        elif line.startswith("branch refs/heads/harness/") and path is not None:
            found.append((path, line.removeprefix("branch refs/heads/")))
    return found


def _worktrees(repo: Path) -> Check:
    found = harness_worktrees(repo)
    if not found:
        return Check(name="leftover worktrees", status="ok", detail="none")
    return Check(name="leftover worktrees", status="warn", detail=f"{len(found)} on harness/* branches",
                 fix="harness cleanup", items=[f"{p} {b}" for p, b in found])
