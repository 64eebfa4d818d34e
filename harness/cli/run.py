"""`harness run`, `resume`, `status`, `show`, `clean`: the run stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import HarnessError, UsageError
from ..sandbox import NAMES as SANDBOXES
from . import views
from .common import check_run_id, guarded, json_option, repo_option, stderr


@click.command()
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

    record = run_plan(plan, repo, progress=stderr, run_id=run_id, sandbox=sandbox,
                      max_parallel=max_parallel, keep_sandboxes=keep_sandboxes)
    _finish_run(record, as_json)


@click.command()
@click.argument("run_id")
@repo_option
@json_option
@guarded
def resume(run_id: str, repo: Path, as_json: bool) -> None:
    """Finish RUN after a crash, a kill or a cancel: reap what it left running, keep its
    finished tasks, commit interrupted attempts' work to their refs, run the rest."""
    from ..repo.run import Run
    from ..run.lifecycle import resume_run

    _finish_run(resume_run(Run.open(repo, run_id), progress=stderr), as_json)


def _finish_run(record, as_json: bool) -> None:
    click.echo(record.model_dump_json(indent=2) if as_json else views.run_summary(record.model_dump(mode="json")))
    if record.status == "cancelled":
        stderr(f"harness: run {record.run_id} cancelled; every attempt's work is on its ref; "
                f"`harness resume {record.run_id}` finishes it")
        sys.exit(143 if record.cancelled_by == "SIGTERM" else 130)
    sys.exit(0 if record.ok else 1)


@click.command()
@repo_option
@guarded
def status(repo: Path) -> None:
    """List the runs of this repository, with what became of their branches."""
    from ..repo.runlog import list_raw

    rows = []
    for entry in list_raw(_runs_dir(repo)):
        try:
            if entry.record is not None:
                rows.append(_viewable(entry.record, lambda r: views.run_row(r, entry.holder))[1])
                continue
        except HarnessError as exc:
            entry.error = str(exc)
        rows.append(views.unreadable_row(entry.run_id, entry.error))
    click.echo(views.run_list(rows))


@click.command()
@click.argument("run_id")
@click.argument("task", required=False)
@repo_option
@json_option
@guarded
def show(run_id: str, task: str | None, repo: Path, as_json: bool) -> None:
    """Show a run, or one task of it: each agent's status and its branch's fate."""
    from ..fates import branch_fates
    from ..repo.runlog import RunLog

    check_run_id(run_id)
    log = RunLog(_runs_dir(repo), run_id)
    record, detail = _viewable(log.load_raw(), views.run_detail)
    fates = branch_fates(record)
    if task is None:
        click.echo(_json({**record, "branch_fates": fates}) if as_json else detail)
        return
    tasks = record.get("tasks", {})
    if task not in tasks and task in record.get("task_order", []):
        live = log.task_progress(task, record["status"])
        click.echo(_json(live) if as_json else views.task_progress(record, live))
        return
    if task not in tasks:
        raise UsageError(f"run {run_id!r} has no task {task!r}")
    if as_json:
        click.echo(_json({**tasks[task], "branch_fate": fates[task]}))
        return
    calls = {a["number"]: _model_calls(log.attempt_dir(task, a["number"])) for a in tasks[task].get("attempts", [])}
    click.echo(views.task_detail(record, task, calls))


def _model_calls(attempt_dir: Path) -> tuple[list[dict], dict]:
    """An attempt's model trace (model.jsonl, by seq) and how many steps came before
    each call (model-steps.json), read as plain JSON; unreadable lines are skipped."""
    from ..repo.runlog import parse_jsonl

    try:
        calls = parse_jsonl((attempt_dir / "model.jsonl").read_bytes())
    except OSError:
        calls = []
    try:
        order = json.loads((attempt_dir / "model-steps.json").read_text()).get("steps_before_call", {})
    except (OSError, ValueError, AttributeError):
        order = {}
    return sorted(calls, key=lambda c: c["seq"]), order if isinstance(order, dict) else {}


def _runs_dir(repo: Path) -> Path:
    """Where the repository's runs live, found without git when the layout is plain."""
    from ..repo.runlog import find_common_dir

    common = find_common_dir(repo)
    if common is None:  # not a plain checkout: let git find it, or say why not
        from ..repo.workspace import Workspace

        common = Workspace(repo).common
    return common / "harness" / "runs"


def _viewable(raw: dict, render) -> tuple[dict, Any]:
    """The record's JSON form as the views expect it, and what `render` made of it. One
    this harness wrote at its own schema version is used as read; an older one, or one
    the view cannot render, goes through the record models (a migration, or one line
    saying what is wrong)."""
    from ..repo.runlog import is_current

    if is_current(raw):
        try:
            return raw, render(raw)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass
    from pydantic import ValidationError

    from ..errors import RecordError
    from ..records import RunRecord

    try:
        record = RunRecord.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        first = str(exc).strip().splitlines()
        raise RecordError(f"run {raw.get('run_id', '?')!r}: not a run record ({first[0][:200] if first else exc})") from None
    return record, render(record)


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


@click.command()
@click.argument("run_id", required=False)
@repo_option
@click.option("--stale", is_flag=True,
              help="Instead of one run: what every run that is not running left behind (also runs "
                   "without a record), and containers whose run folder is gone.")
@click.option("--force", is_flag=True, help="Also remove worktrees holding uncommitted changes.")
@guarded
def clean(run_id: str | None, repo: Path, stale: bool, force: bool) -> None:
    """Remove RUN's worktrees and leftover sandboxes (or, with --stale, those of every
    run that is not running); branches and refs stay."""
    if stale == (run_id is not None):
        raise UsageError("give a RUN or --stale (not both)")
    if stale:
        _clean_stale(repo, force)
        return
    from ..run.lifecycle import clean_run

    check_run_id(run_id)
    removed = clean_run(repo, run_id, force=force)
    click.echo(f"removed {len(removed)} worktree(s)/sandbox(es) of run {run_id}; branches stay")


def _clean_stale(repo: Path, force: bool) -> None:
    from ..repo.workspace import open_repo
    from ..run.lifecycle import clean_stale

    if click.get_current_context().get_parameter_source("repo") == click.core.ParameterSource.DEFAULT:
        try:
            open_repo(repo)
        except UsageError:
            repo = None  # run outside any repository: only orphaned containers
    done = clean_stale(repo, force=force)
    where = "" if done.looked_at_repo else " (not in a git repository: only containers whose run folder is gone)"
    click.echo(f"removed {len(done.removed)} worktree(s)/sandbox(es) of {len(done.runs)} run(s) that are not "
               f"running{where}; branches stay")
    if done.docker:
        stderr(f"harness: containers not looked at: {done.docker}")
    for run_id in done.busy:
        stderr(f"harness: run {run_id} is running; left alone")
    if done.kept:
        stderr(f"harness: kept {len(done.kept)} worktree(s) holding uncommitted changes (first: {done.kept[0]}); "
               "--force removes them, except an interrupted run's: `harness resume RUN` keeps that work, "
               "`harness clean RUN --force` drops it")


COMMANDS = [run, resume, status, show, clean]
