"""Versioning, one policy for every record the harness writes (the handoffs in
records.py, and the bench records in bench/model.py).

`schema_version` comes first. Readers accept unknown keys, so what a newer writer
adds does not break an older reader. A change of meaning bumps `schema_version` and
comes with a migration, so older records stay readable (tests read the v1 fixtures).
A record whose version is higher than this harness knows is refused in one line
(`version_problem`): its meaning may have changed.

Plain Python, so the quick commands can check a record's version before deciding
whether they need the record models at all.
"""

from __future__ import annotations

SCHEMA_VERSION = 1


def version_problem(data: dict, current: int = SCHEMA_VERSION) -> str | None:
    """Why this harness cannot read a raw record (a version newer than `current`, or
    not a version at all), or None when it can."""
    version = data.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version <= current:
        return None
    return f"schema_version {version!r} is newer than this harness reads ({current}); upgrade harness"
