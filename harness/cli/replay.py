"""`harness replay`: rerun a finished run's tasks against their recorded model answers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import check_run_id, guarded, repo_option, stderr


@click.command()
@click.argument("run_id")
@click.argument("tasks", nargs=-1)
@repo_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@guarded
def replay(run_id: str, tasks: tuple[str, ...], repo: Path, as_json: bool) -> None:
    """Run TASKS of RUN again (default: every task with model calls recorded) as a new run
    whose gateway serves the recorded answers, no upstream or key needed; say per task
    whether it left the same tree. Exit 0 when every task did, 1 otherwise."""
    from ..run.replay import prepare_replay, replay_run

    check_run_id(run_id)
    report = replay_run(prepare_replay(repo, run_id, tasks), progress=stderr)
    click.echo(report.model_dump_json(indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else 1)


def render(report) -> str:
    """One line per task (and per diverged or differing attempt), then the summary."""
    lines = []
    for t in report.tasks:
        if t.reproduced:
            lines.append(f"{t.task_id}: same tree {t.tree[:12]} ({t.status}, {len(t.attempts)} attempt(s))")
            continue
        lines.append(f"{t.task_id}: {'diverged' if t.diverged else 'different tree'}: {t.why_not}")
        lines.append(f"  original {t.original_status}, tree {(t.original_tree or '(none)')[:12]}; "
                     f"replay {t.status}, tree {(t.tree or '(none)')[:12]}")
    lines.append(report.summary)
    return "\n".join(lines)


COMMANDS = [replay]
