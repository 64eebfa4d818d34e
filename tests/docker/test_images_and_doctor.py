"""Sandbox images and the doctor against the real daemon."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.sandbox import images
from harness.sandbox.doctor import doctor
from harness.errors import ImageBuildError
from sandboxutil import make_request, require_docker


def test_python_image_is_present_and_complete(tmp_path):
    require_docker()
    assert images.image_present("python")
    assert images.image_id("python").startswith("sha256:")
    from harness.config import DockerSandboxConfig
    from harness.sandbox import get_sandbox

    script = ("python3 --version && python3 -m pytest --version && git --version && gcc --version "
              "&& make --version && py-spy --version && ps --version && test -s /etc/ssl/certs/ca-certificates.crt "
              "&& pwd && echo $HOME")
    result = get_sandbox(DockerSandboxConfig(user="4321:4321")).run(make_request(tmp_path, ["sh", "-c", script]))
    assert result.exit_code == 0, result.output_tail
    assert "Python 3.11" in result.output_tail and "py-spy" in result.output_tail
    assert result.output_tail.split()[-2:] == ["/workspace", "/tmp"]


def test_image_runs_pytest_on_the_workspace(tmp_path):
    require_docker()
    from harness.config import DockerSandboxConfig
    from harness.sandbox import get_sandbox

    req = make_request(tmp_path, ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    (req.workspace / "test_x.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    result = get_sandbox(DockerSandboxConfig()).run(req)
    assert result.exit_code == 0, result.output_tail
    assert "1 passed" in result.output_tail


def test_py_spy_can_profile_with_sys_ptrace(tmp_path):
    require_docker()
    from harness.config import DockerSandboxConfig
    from harness.sandbox import get_sandbox

    code = "import time\nt = time.time()\nwhile time.time() - t < 3:\n    sum(range(1000))\n"
    req = make_request(tmp_path, ["sh", "-c", f"py-spy record -o /workspace/prof.txt -f raw -d 2 -- python3 -c '{code}'"])
    result = get_sandbox(DockerSandboxConfig(cap_add=["SYS_PTRACE"])).run(req)
    assert result.exit_code == 0, result.output_tail
    assert (req.workspace / "prof.txt").stat().st_size > 0


def test_unknown_image_name_is_a_one_line_error():
    with pytest.raises(ImageBuildError, match="no sandbox image 'nope'") as info:
        images.build_image("nope")
    assert "\n" not in str(info.value)
    assert "python" in str(info.value)


def test_image_list_through_the_cli():
    require_docker()
    out = subprocess.run(["python3", "-m", "harness", "image", "list"], capture_output=True, text=True,
                         cwd=Path(images.__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert "harness/python:latest\tsha256:" in out.stdout


def test_doctor(tmp_path):
    """Leftover worktrees are the harness's detached `harness+RUN+LEAF` ones, found where
    the harness puts them whichever run they belong to (here one with no record); a
    user's own worktree is none of them, even on a `harness/*` branch."""
    require_docker()
    from harness.repo.workspace import Workspace, worktree_name

    repo = tmp_path / "repo"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "base"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", "harness/r1/t1", str(tmp_path / "wt")],
                   check=True, env=env)
    ws = Workspace(repo)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    leftover = ws.create_worktree(worktree_name("r1", "t1.1"), ws.root / "worktrees/r1/t1.1", head)
    assert ws.harness_worktrees() == {"r1": [(leftover, "harness+r1+t1.1")]}
    checks = {c.name: c for c in doctor(repo)}
    assert checks["git"].status == "ok"
    assert checks["docker daemon"].status == "ok"
    assert checks["image python"].status == "ok"
    assert checks["disk"].status in ("ok", "warn")
    assert checks["interrupted runs"].status == "ok"
    assert checks["leftover worktrees"].status == "warn"
    assert checks["leftover worktrees"].items == [f"{leftover} run=r1 (no record)"]
    assert checks["leftover worktrees"].fix == "harness clean --stale"
    assert "uncommitted work in leftover worktrees" not in checks
    fixes = {c.name: c.fix for c in doctor(repo, fix_repo="some dir") if c.fix}
    assert fixes["leftover worktrees"] == "harness clean --stale --repo 'some dir'"


def test_doctor_reports_a_down_daemon(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    checks = {c.name: c for c in doctor()}
    assert checks["docker daemon"].status == "fail"
    assert "docker-up.sh" in checks["docker daemon"].detail
    assert checks["docker daemon"].fix is None  # a fix is a command; starting a daemon is not ours
    assert "image python" not in checks
    assert checks["leftover containers"].detail == "not looked for: the Docker daemon is not reachable"


def test_doctor_view_says_how_many_items_it_left_out():
    from harness.cli.views import checks
    from harness.sandbox.doctor import Check

    many = Check(name="leftover worktrees", status="warn", detail="12", fix="harness clean --stale",
                 items=[f"wt{i}" for i in range(12)])
    lines = checks([many]).splitlines()
    assert lines[0] == "warn  leftover worktrees: 12"
    assert lines[1:11] == [f"        wt{i}" for i in range(10)]
    assert lines[11:] == ["        ... and 2 more", "        fix: harness clean --stale"]
