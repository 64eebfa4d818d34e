"""What every command shares: its options, progress on stderr, and the one place
where the harness's own errors become one line and an exit code.

Imports nothing heavy; commands import the library inside their bodies."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..errors import HarnessError

repo_option = click.option("--repo", type=click.Path(path_type=Path), default=Path("."),
                           show_default=True, help="The target git repository.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")


def stderr(line: str) -> None:
    """The Progress of every command: one line on stderr."""
    click.echo(line, err=True)


def check_run_id(run_id: str) -> None:
    """Refuse a run id that could not name a run (`../x`, `a..b`) before opening anything."""
    from ..ids import check_run_id as check

    check(run_id)


def guarded(fn):
    """Turn the harness's own errors into one clear line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            stderr(f"harness: {exc}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            stderr("harness: interrupted")
            sys.exit(130)

    return wrapper
