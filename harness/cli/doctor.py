"""`harness doctor`: is this machine ready to run agents?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import views
from .common import guarded, repo_option


@click.command()
@repo_option
@guarded
def doctor(repo: Path) -> None:
    """Check git, pygit2, the Docker daemon, images, disk, and what runs that are not
    running left behind (worktrees, containers, processes). Every `fix:` is a command."""
    from ..sandbox.doctor import doctor as run_checks

    given = click.get_current_context().get_parameter_source("repo") != click.core.ParameterSource.DEFAULT
    checks = run_checks(repo, fix_repo=str(repo) if given else None)
    click.echo(views.checks(checks))
    sys.exit(1 if any(c.status == "fail" for c in checks) else 0)


COMMANDS = [doctor]
