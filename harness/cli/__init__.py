"""`harness`: a thin click layer. Each command parses, calls one library function,
and renders; HarnessError becomes one line on stderr and its exit code."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..errors import HarnessError, UsageError
from ..sandbox import NAMES as SANDBOXES
from . import views as render

repo_option = click.option("--repo", type=click.Path(path_type=Path), default=Path("."),
                           show_default=True, help="The target git repository.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def _check_run_id(run_id: str) -> None:
    """Refuse a run id that could not name a run (`../x`, `a..b`) before opening anything."""
    from ..config import check_run_id

    check_run_id(run_id)


def guarded(fn):
    """Turn the harness's own errors into one clear line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            _stderr(f"harness: {exc}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _stderr("harness: interrupted")
            sys.exit(130)

    return wrapper


@click.group()
@click.version_option(package_name="harness")
def main() -> None:
    """Run coding agents in parallel, each in its own worktree and sandbox;
    integrate their branches, gate CI on the merged result, benchmark strategies."""


@main.command()
@click.argument("plan", type=click.Path(path_type=Path))
@repo_option
@click.option("--max-parallel", type=int, help="Most agents at once (overrides the plan).")
@click.option("--sandbox", type=click.Choice(SANDBOXES), help="Sandbox backend (overrides the plan).")
@click.option("--run-id", help="Run id (default: from the plan, or generated).")
@click.option("--keep-sandboxes", is_flag=True, help="Keep containers after their attempt.")
@json_option
@guarded
def run(plan: Path, repo: Path, max_parallel: int | None, sandbox: str | None, run_id: str | None,
        keep_sandboxes: bool, as_json: bool) -> None:
    """Run PLAN: every task in its own worktree, branch and sandbox."""
    from ..run.lifecycle import run_plan

    record = run_plan(plan, repo, progress=_stderr, run_id=run_id, sandbox=sandbox,
                      max_parallel=max_parallel, keep_sandboxes=keep_sandboxes)
    _finish_run(record, as_json)


@main.command()
@click.argument("run_id")
@repo_option
@json_option
@guarded
def resume(run_id: str, repo: Path, as_json: bool) -> None:
    """Finish RUN after a crash, a kill or a cancel: reap what it left running, keep its
    finished tasks, commit interrupted attempts' work to their refs, run the rest."""
    from ..run.lifecycle import resume_run

    _finish_run(resume_run(repo, run_id, progress=_stderr), as_json)


def _finish_run(record, as_json: bool) -> None:
    click.echo(record.model_dump_json(indent=2) if as_json else render.run_summary(record))
    if record.status == "cancelled":
        _stderr(f"harness: run {record.run_id} cancelled; every attempt's work is on its ref; "
                f"`harness resume {record.run_id}` finishes it")
        sys.exit(143 if record.cancelled_by == "SIGTERM" else 130)
    sys.exit(0 if record.ok else 1)


@main.command()
@repo_option
@guarded
def status(repo: Path) -> None:
    """List the runs of this repository."""
    from ..repo.store import list_runs
    from ..repo.workspace import Workspace

    click.echo(render.run_list(list_runs(Workspace(repo))))


@main.command()
@click.argument("run_id")
@click.argument("task", required=False)
@repo_option
@json_option
@guarded
def show(run_id: str, task: str | None, repo: Path, as_json: bool) -> None:
    """Show a run, or one task of it."""
    from ..repo.store import open_run

    _check_run_id(run_id)
    _, store, record = open_run(repo, run_id)
    if task is None:
        click.echo(record.model_dump_json(indent=2) if as_json else render.run_detail(record))
        return
    if task not in record.tasks and task in record.task_order:
        live = store.task_progress(task, record.status)
        click.echo(json.dumps(live, indent=2) if as_json else render.task_progress(record, live))
        return
    if task not in record.tasks:
        raise UsageError(f"run {run_id!r} has no task {task!r}")
    result = record.tasks[task]
    click.echo(result.model_dump_json(indent=2) if as_json else render.task_detail(record, result))


@main.command()
@click.argument("run_id")
@repo_option
@click.option("--force", is_flag=True, help="Also remove worktrees holding uncommitted changes.")
@guarded
def clean(run_id: str, repo: Path, force: bool) -> None:
    """Remove a run's worktrees and leftover sandboxes; its branches stay."""
    from ..run.lifecycle import clean_run

    _check_run_id(run_id)
    removed = clean_run(repo, run_id, force=force)
    click.echo(f"removed {len(removed)} worktree(s)/sandbox(es) of run {run_id}; branches stay")


@main.command()
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
    from ..integrate.integrator import integrate_run
    from ..run.retry import ConflictRetry

    _check_run_id(run_id)
    report = integrate_run(repo, run_id, onto=onto, order=order, policy=policy, tasks=list(tasks) or None,
                           retry=ConflictRetry, progress=_stderr)
    click.echo(report.model_dump_json(indent=2) if as_json else render.merge_report(report))
    sys.exit(1 if report.status == "failed" else 0)


@main.command()
@click.argument("run_id")
@repo_option
@json_option
@guarded
def conflicts(run_id: str, repo: Path, as_json: bool) -> None:
    """Forecast which of RUN's agents will collide, and where, before merging."""
    from ..integrate.forecast import forecast_run

    _check_run_id(run_id)
    fc = forecast_run(repo, run_id)
    click.echo(fc.model_dump_json(indent=2) if as_json else render.forecast(fc))


@main.command()
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
              help="Do not test each culprit alone (no semantic-conflict records; fewer test runs).")
@json_option
@guarded
def gate(run_id: str, repo: Path, test_cmd: str | None, land: str | None, force_land: bool,
         rerun_failed: bool, sandbox: str | None, check_alone: bool, as_json: bool) -> None:
    """Test RUN's integration in a fresh sandbox; bisect culprits when red; land when green.

    Exit 0 green (and landed if asked), 1 red or land refused (REF moved since the
    gate started), 2 bad input (REF checked out in a worktree without --force-land too)."""
    from ..gate.gate import gate_run

    _check_run_id(run_id)
    report = gate_run(repo, run_id, test_cmd=test_cmd, land=land, force_land=force_land,
                      rerun_failed=rerun_failed, sandbox=sandbox, check_alone=check_alone,
                      progress=_stderr)
    click.echo(report.model_dump_json(indent=2) if as_json else render.gate_report(report))
    sys.exit(0 if report.status == "green" else 1)


@main.group()
def image() -> None:
    """Sandbox images (sandboxes/<name>/)."""


@image.command("build")
@click.argument("name", default="python")
@click.option("--offline/--online", default=None, help="Force the build path (default: offline when no registry answers).")
@guarded
def image_build(name: str, offline: bool | None) -> None:
    """Build the sandbox image NAME (default: python)."""
    from ..sandbox.images import build_image

    click.echo(build_image(name, progress=_stderr, offline=offline))


@main.command()
@repo_option
@guarded
def doctor(repo: Path) -> None:
    """Check git, pygit2, the Docker daemon, images, disk, and leftovers of earlier runs."""
    from ..sandbox.doctor import doctor as run_checks

    checks = run_checks(repo)
    click.echo(render.checks(checks))
    sys.exit(1 if any(c.status == "fail" for c in checks) else 0)


def _bench_group() -> click.Group:
    from .bench import make_group

    return make_group(guarded, json_option)


main.add_command(_bench_group(), "bench")
