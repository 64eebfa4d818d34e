"""`harness gate`: the gate stage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..sandbox import NAMES as SANDBOXES
from . import views
from .common import check_run_id, guarded, json_option, repo_option, stderr


@click.command()
@click.argument("run_id")
@repo_option
@click.option("--test-cmd", help="Test command (default: the plan's [run] test_cmd).")
@click.option("--land", metavar="REF", help="When green, move REF to the tested commit "
              "(compare-and-swap against its value when the gate started). A branch checked out "
              "in a worktree is refused, as git push refuses it.")
@click.option("--force-land", is_flag=True, help="Land even on a branch checked out in a worktree; "
              "that worktree's files and index stay at the old commit.")
@click.option("--rerun-failed", is_flag=True, help="Run failing tests once more before bisecting; "
              "tests that pass then are reported flaky.")
@click.option("--sandbox", type=click.Choice(SANDBOXES), help="Sandbox backend (overrides the run's).")
@click.option("--no-check-alone", "check_alone", is_flag=True, flag_value=False, default=True,
              help="Do not test each culprit alone (no semantic-conflict records, no partner search; "
              "fewer test runs).")
@click.option("--timeout", "timeout_s", type=float, metavar="SECONDS",
              help="Time limit of each test run (default: the plan's [run] test_timeout_s, 1800).")
@json_option
@guarded
def gate(run_id: str, repo: Path, test_cmd: str | None, land: str | None, force_land: bool,
         rerun_failed: bool, sandbox: str | None, check_alone: bool, timeout_s: float | None,
         as_json: bool) -> None:
    """Test RUN's integration in a fresh sandbox; bisect culprits when red; land when green.

    Of two branches that fail only together, the later one in the plan (or in the
    order given to `integrate --order given`) is rejected, whatever order the agents
    finished in; its record names the earlier one it clashes with.

    Exit 0 green (and landed if asked), 1 red or land refused (REF moved since the
    gate started), 2 bad input (REF checked out in a worktree without --force-land too)."""
    from ..gate.gate import gate_run
    from ..gate.inputs import check_gate_options
    from ..repo.run import Run

    check_run_id(run_id)
    check_gate_options(test_cmd=test_cmd, land=land, force_land=force_land, timeout_s=timeout_s)
    run = Run.open(repo, run_id)
    report = gate_run(run, test_cmd=test_cmd, land=land, force_land=force_land, rerun_failed=rerun_failed,
                      sandbox=sandbox, check_alone=check_alone, timeout_s=timeout_s, progress=stderr)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        recorded = run.reload().conflicts
        click.echo(views.gate_report(report, [c for c in recorded if c.conflict_class == "semantic"
                                              and c.task_id in report.partners]))
    sys.exit(0 if report.status == "green" else 1)


COMMANDS = [gate]
