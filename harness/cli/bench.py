"""`harness bench`: run a bench, rebuild its report, compare two runs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..sandbox import NAMES as SANDBOXES
from .common import check_run_id, guarded, json_option, stderr


def _report_dir(repo: Path | None, run_id: str) -> Path:
    """The bench folder of a run: in --repo, or else in the repositories made from
    bundled examples (where `harness bench SPEC` without --repo ran)."""
    from ..bench.runner import targets_cache
    from ..errors import UsageError
    from ..repo.run import Run

    check_run_id(run_id)
    if repo is not None:
        return Run.open(repo, run_id).store.dir / "bench"
    for found in sorted(targets_cache().glob(f"*/.git/harness/runs/{run_id}/bench")):
        return found
    try:
        run = Run.open(Path("."), run_id)
    except UsageError:
        raise UsageError(f"unknown bench run {run_id!r} (give the target with --repo)") from None
    return run.store.dir / "bench"


class _SpecFirst(click.Group):
    """`harness bench SPEC` runs a spec; `report` and `compare` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_SpecFirst)
def bench() -> None:
    """Reproduce an optimization run: strategies as agents, measured and gated."""


@bench.command("run")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--repo", type=click.Path(path_type=Path), help="Target repository (default: the spec's target).")
@click.option("--run-id", help="Run id (default: generated).")
@click.option("--sandbox", type=click.Choice(SANDBOXES), help="Override the spec's sandbox.")
@click.option("--repeats", type=int, help="Samples per side (overrides the spec).")
@json_option
@guarded
def run(spec: Path, repo: Path | None, run_id: str | None, sandbox: str | None,
        repeats: int | None, as_json: bool) -> None:
    """Run the bench SPEC end to end and write report.json and report.html."""
    from ..bench.runner import run_bench
    from ..bench.summary import summary_text

    if run_id is not None:
        check_run_id(run_id)
    report, html = run_bench(spec, repo=repo, run_id=run_id, sandbox=sandbox, repeats=repeats,
                             progress=stderr)
    click.echo(report.model_dump_json(indent=2) if as_json else summary_text(report, html))
    sys.exit(0 if report.summary.significant and report.summary.verdict == "faster" else 1)


target_option = click.option("--repo", type=click.Path(path_type=Path),
                             help="The target repository (default: found by run id).")


@bench.command("report")
@click.argument("run_id")
@target_option
@guarded
def report(run_id: str, repo: Path | None) -> None:
    """Rebuild report.html of a bench run from its report.json."""
    from ..bench.html import write_report
    from ..bench.model import load_report

    folder = _report_dir(repo, run_id)
    _, html = write_report(load_report(folder), folder)
    click.echo(str(html))

@bench.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@target_option
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Also write an HTML comparison here.")
@guarded
def compare_cmd(run_a: str, run_b: str, repo: Path | None, html_out: Path | None) -> None:
    """Compare two bench runs: baseline, integration and each strategy."""
    from ..bench.html import compare_reports, render_compare_html
    from ..bench.model import load_report

    for run_id in (run_a, run_b):
        check_run_id(run_id)
    a, b = (load_report(_report_dir(repo, r)) for r in (run_a, run_b))
    click.echo(compare_reports(a, b))
    if html_out:
        html_out.write_text(render_compare_html(a, b))


COMMANDS = [bench]
