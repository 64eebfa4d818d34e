"""Every command and flag reaches the library call it names.

The commands' behaviour is tested end to end elsewhere (tests/integration, docker);
these drive the flags no other test passes through the CLI, in-process, with the one
library call each command makes replaced by a recorder."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from gitutil import make_repo, write_plan
from harness.cli import main
from harness.errors import UsageError


TWO_TASKS = '[[task]]\nid = "a"\ncommand = "true"\n[[task]]\nid = "b"\ncommand = "true"\n'


class Recorder:
    """Stands in for a library function: keeps its arguments, returns `result`."""

    def __init__(self, result=None) -> None:
        self.result = result
        self.args: tuple = ()
        self.kwargs: dict = {}

    def __call__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def _report(**fields) -> SimpleNamespace:
    return SimpleNamespace(model_dump_json=lambda indent=None: json.dumps({"fake": True}), **fields)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_passes_max_parallel_run_id_sandbox_and_keep_sandboxes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\n' + TWO_TASKS)
    res = invoke("run", str(plan), "--repo", str(repo), "--max-parallel", "1", "--run-id", "cli-flags",
                 "--sandbox", "local", "--keep-sandboxes", "--json")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["run_id"] == "cli-flags" and record["max_parallel"] == 1 and record["sandbox"] == "local"


def test_run_keep_sandboxes_reaches_the_plan(monkeypatch, tmp_path):
    import harness.run.lifecycle as lifecycle

    rec = Recorder(SimpleNamespace(status="finished", ok=True, run_id="r", cancelled_by=None,
                                   model_dump_json=lambda indent=None: "{}"))
    monkeypatch.setattr(lifecycle, "run_plan", rec)
    res = invoke("run", "plan.toml", "--repo", str(tmp_path), "--keep-sandboxes", "--max-parallel", "3",
                 "--sandbox", "docker", "--run-id", "x", "--json")
    assert res.exit_code == 0, res.output
    assert rec.kwargs == {"progress": rec.kwargs["progress"], "run_id": "x", "sandbox": "docker",
                          "max_parallel": 3, "keep_sandboxes": True}


def test_keep_sandboxes_keeps_every_docker_task(tmp_path):
    from harness.run.plan import resolve_plan

    plan = write_plan(tmp_path / "plan.toml", TWO_TASKS + 'sandbox = "local"\n')
    resolved = resolve_plan(plan, sandbox="docker", keep_sandboxes=True)
    assert all(t.sandbox.type == "docker" and t.sandbox.keep for t in resolved.tasks.values())


@pytest.mark.parametrize("flags,expect", [
    ([], {"rerun_failed": False, "check_alone": True, "sandbox": None}),
    (["--rerun-failed", "--no-check-alone", "--sandbox", "local"],
     {"rerun_failed": True, "check_alone": False, "sandbox": "local"}),
])
def test_gate_flags(monkeypatch, tmp_path, flags, expect):
    import harness.gate.gate as gate

    from harness.repo.run import Run

    rec = Recorder(_report(status="green"))
    monkeypatch.setattr(gate, "gate_run", rec)
    monkeypatch.setattr(Run, "open", classmethod(lambda cls, repo, run_id: SimpleNamespace(run_id=run_id)))
    res = invoke("gate", "r1", "--repo", str(tmp_path), "--json", *flags)
    assert res.exit_code == 0, res.output
    assert {k: rec.kwargs[k] for k in expect} == expect


def test_bench_spec_runs_the_spec(monkeypatch, tmp_path):
    import harness.bench.runner as runner

    summary = SimpleNamespace(significant=True, verdict="faster")
    rec = Recorder((_report(summary=summary), tmp_path / "report.html"))
    monkeypatch.setattr(runner, "run_bench", rec)
    res = invoke("bench", str(tmp_path / "spec.toml"), "--repeats", "3", "--sandbox", "local",
                 "--run-id", "b1", "--json")
    assert res.exit_code == 0, res.output
    assert rec.args == (tmp_path / "spec.toml",)
    assert {k: rec.kwargs[k] for k in ("run_id", "sandbox", "repeats", "repo")} == {
        "run_id": "b1", "sandbox": "local", "repeats": 3, "repo": None}


def test_bench_spec_not_faster_exits_1(monkeypatch, tmp_path):
    import harness.bench.runner as runner

    summary = SimpleNamespace(significant=False, verdict="same")
    monkeypatch.setattr(runner, "run_bench", Recorder((_report(summary=summary), tmp_path / "r.html")))
    assert invoke("bench", "spec.toml", "--json").exit_code == 1


@pytest.mark.parametrize("status,code", [("ok", 0), ("warn", 0), ("fail", 1)])
def test_doctor_exit_code_follows_its_checks(monkeypatch, tmp_path, status, code):
    import harness.sandbox.doctor as doctor

    checks = [doctor.Check(name="git", status="ok", detail="2.40"),
              doctor.Check(name="docker daemon", status=status, detail="found", fix="start it")]
    rec = Recorder(checks)
    monkeypatch.setattr(doctor, "doctor", rec)
    res = invoke("doctor", "--repo", str(tmp_path))
    assert res.exit_code == code
    assert rec.args == (tmp_path,)
    assert "git: 2.40" in res.output and "docker daemon: found" in res.output
    assert ("fix: start it" in res.output) is (status != "ok")


@pytest.mark.parametrize("flags,offline", [([], None), (["--offline"], True), (["--online"], False)])
def test_image_build(monkeypatch, flags, offline):
    import harness.sandbox.images as images

    rec = Recorder("sha256:abc")
    monkeypatch.setattr(images, "build_image", rec)
    res = invoke("image", "build", "toolchain", *flags)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "sha256:abc"
    assert rec.args == ("toolchain",) and rec.kwargs["offline"] is offline


def test_image_list(monkeypatch):
    import harness.sandbox.images as images

    monkeypatch.setattr(images, "available", lambda: ["python", "rust"])
    monkeypatch.setattr(images, "image_id", lambda name: "sha256:1" if name == "python" else None)
    res = invoke("image", "list")
    assert res.exit_code == 0, res.output
    assert res.stdout == "harness/python:latest\tsha256:1\nharness/rust:latest\tabsent\n"


def test_image_build_error_is_one_line(monkeypatch):
    import harness.sandbox.images as images

    monkeypatch.setattr(images, "build_image", Recorder(UsageError("no sandboxes/nope/ to build")))
    res = CliRunner().invoke(main, ["image", "build", "nope"])
    assert res.exit_code == 2
    assert res.output.strip() == "harness: no sandboxes/nope/ to build"


def test_version_is_the_distributions_own():
    """`--version` prints harness.__version__ without scanning package metadata, and
    the installed distribution carries that same version (pyproject reads it)."""
    from importlib.metadata import version

    import harness
    from click.testing import CliRunner
    from harness.cli import main

    out = CliRunner().invoke(main, ["--version"]).output
    assert out.strip() == f"harness, version {harness.__version__}"
    assert version("harness-agents") == harness.__version__
