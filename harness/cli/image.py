"""`harness image build` and `harness image list`: the sandbox images."""

from __future__ import annotations

import click

from .common import guarded, stderr


@click.group()
def image() -> None:
    """Sandbox images (sandboxes/<name>/)."""


@image.command("build")
@click.argument("name", default="python")
@click.option("--offline/--online", default=None, help="Force the build path (default: offline when no registry answers).")
@guarded
def image_build(name: str, offline: bool | None) -> None:
    """Build the sandbox image NAME (default: python)."""
    from ..sandbox.images import build_image

    click.echo(build_image(name, progress=stderr, offline=offline))



@image.command("list")
@guarded
def image_list() -> None:
    """The images this checkout can build (sandboxes/<name>/), each with its id or "absent"."""
    from ..sandbox.images import available, image_id, image_tag

    for name in available():
        click.echo(f"{image_tag(name)}\t{image_id(name) or 'absent'}")


COMMANDS = [image]
