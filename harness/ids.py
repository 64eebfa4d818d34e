"""Run and task ids: what may name a run's refs and its folder.

An id becomes a component of `refs/heads/harness/<run>/<task>` and
`refs/harness/<run>/<task>/<n>`, anywhere in them, and a folder name under
`.git/harness/runs/`. Plain Python, so the quick commands check an id without
importing git or the record models.
"""

from __future__ import annotations

import re

from .errors import UsageError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


def id_problem(value: str) -> str | None:
    """Why `value` cannot be a run or task id, or None when it can. Within
    ID_PATTERN's characters, git's ref-name rules refuse only '..', a trailing '.'
    (the id ends the branch name) and a '.lock' ending (a test checks this against
    libgit2's own check)."""
    if not _ID_RE.match(value):
        return "letters, digits, '.', '_' and '-' only, starting with a letter or digit, at most 64"
    if ".." in value or value.endswith(".") or value.endswith(".lock"):
        return "git refuses it in a ref name (no '..', no trailing '.', no '.lock' ending)"
    return None


def valid_id(value: str) -> bool:
    return id_problem(value) is None


def check_run_id(run_id: str) -> None:
    """Raises UsageError unless `run_id` can name a run's refs and folder; every
    command that takes a run id calls it before opening anything."""
    problem = id_problem(run_id)
    if problem:
        raise UsageError(f"invalid run id {run_id!r}: {problem}")
