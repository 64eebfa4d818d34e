"""`harness integrate` and `harness conflicts`: the integrate stage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import views
from .common import check_run_id, guarded, json_option, repo_option, stderr


@click.command()
@click.argument("run_id")
@repo_option
@click.option("--onto", help="Ref or commit to fold onto (default: the run's base commit).")
@click.option("--order", type=click.Choice(["finish", "plan", "given"]), default="finish", show_default=True,
              help="Fold by the agents' finish time, in plan order, or in the order of --task.")
@click.option("--task", "tasks", multiple=True, metavar="TASK",
              help="Fold only this task's branch (repeatable).")
@click.option("--on-conflict", "policy", type=click.Choice(["skip", "retry", "fail"]), default="skip",
              show_default=True, help="Leave a conflicting branch out, re-run its task on the "
              "integration head, or stop without moving the integration branch.")
@json_option
@guarded
def integrate(run_id: str, repo: Path, onto: str | None, order: str, tasks: tuple[str, ...], policy: str,
              as_json: bool) -> None:
    """Fold RUN's succeeded branches into harness/RUN/integration, in memory."""
    from ..integrate.integrator import check_integrate_options, integrate_run
    from ..repo.run import Run
    from ..run.retry import ConflictRetry

    check_run_id(run_id)
    options = dict(order=order, policy=policy, tasks=list(tasks) or None, retry=ConflictRetry)
    check_integrate_options(**options)
    report = integrate_run(Run.open(repo, run_id), onto=onto, progress=stderr, **options)
    click.echo(report.model_dump_json(indent=2) if as_json else views.merge_report(report))
    sys.exit(1 if report.status == "failed" else 0)


@click.command()
@click.argument("run_id")
@repo_option
@json_option
@guarded
def conflicts(run_id: str, repo: Path, as_json: bool) -> None:
    """Forecast which of RUN's agents will collide, and where, before merging."""
    from ..integrate.forecast import forecast_run
    from ..repo.run import Run

    check_run_id(run_id)
    fc = forecast_run(Run.open(repo, run_id))
    click.echo(fc.model_dump_json(indent=2) if as_json else views.forecast(fc))


COMMANDS = [integrate, conflicts]
