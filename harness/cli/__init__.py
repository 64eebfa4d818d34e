"""`harness`: a thin click layer, one module per command group.

Each command parses, calls one library function and renders; HarnessError becomes
one line on stderr and its exit code (see `common.guarded`). Command modules import
the library inside their command bodies, so `harness --version`, `--help` and the
quick commands start without importing what they do not use.
"""

from __future__ import annotations

import click

from .. import __version__
from . import bench, doctor, gate, image, integrate, replay, run


@click.group()
@click.version_option(__version__, prog_name="harness")  # no package metadata scan at start
def main() -> None:
    """Run coding agents in parallel, each in its own worktree and sandbox;
    integrate their branches, gate CI on the merged result, benchmark strategies."""


for _group in (run, replay, integrate, gate, bench, image, doctor):
    for _command in _group.COMMANDS:
        main.add_command(_command)
