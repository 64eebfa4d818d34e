"""Progress: how a stage tells its caller what it is doing, one line at a time."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str], None]
"""Takes one human-readable line; the CLI prints it to stderr, a library caller may drop it."""


def quiet(_: str) -> None:
    """The Progress that drops every line (the default for library calls)."""
