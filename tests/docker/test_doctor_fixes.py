"""Every `fix:` line `harness doctor` prints is a command that works as printed.

The leftovers are made for real: a finished run that kept its worktrees (one of them
edited by hand), a docker run and a local run killed with SIGKILL (their containers
and agent processes still running), a killed run whose record was then deleted, a
container with the harness's labels whose run folder is gone, and one with the labels
and no run folder at all. Beside them a run that is still going, and a killed run of
another repository, neither of which a fix may touch. Each fix line is parsed from the
real output and run with the shell in the repository; it must exit 0 and its warning
must be gone from the next `harness doctor`. No ref moves or goes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import harness
from harness.sandbox.local import kill_marked
from crashutil import marked_processes, plan_file, wait_for
from gitutil import git, make_repo, write_plan

IMAGE = "harness/python:latest"
HANG = 'touch "$HARNESS_TASK.started"; sleep 600'
# Attempt 1 leaves work and hangs until the harness is killed; a resumed one ends at once.
ONCE = 'echo "$HARNESS_ATTEMPT" > "$HARNESS_TASK.txt"; if [ "$HARNESS_ATTEMPT" = 1 ]; then ' + HANG + '; fi'


def _env(tmp_path: Path) -> dict:
    """The environment of a user's shell where `harness` is this checkout's command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "harness"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness "$@"\n')
    shim.chmod(0o755)
    root = str(Path(harness.__file__).resolve().parents[1])
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def _cli(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _doctor(env: dict, repo: Path, *, code: int = 0) -> dict[str, dict]:
    """`harness doctor` parsed: name -> {status, detail, items, fix}."""
    proc = _cli(env, repo, "doctor")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    checks: dict[str, dict] = {}
    current = None
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            status, rest = line.split(None, 1)
            name, detail = rest.split(": ", 1)
            current = checks[name] = {"status": status, "detail": detail, "items": [], "fix": None}
        elif line.strip().startswith("fix: "):
            current["fix"] = line.strip().removeprefix("fix: ")
        else:
            current["items"].append(line.strip())
    return checks


def _cleared(checks: dict[str, dict], name: str, tag: str) -> bool:
    """Whether the check warns no more. The daemon is shared with whatever else runs on
    this machine, where an orphan (a container whose run folder was just deleted) can
    appear at any moment; so for containers: none of this test's is warned about."""
    check = checks.get(name, {"status": "ok", "items": []})
    if name == "leftover containers":
        return not any(tag in item for item in check["items"])
    return check["status"] == "ok"


def _containers(client, run_id: str, **filters) -> list:
    return client.containers.list(all=True, filters={"label": f"harness.run={run_id}", **filters})


def _start(env: dict, plan: Path, repo: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["harness", "run", str(plan), "--repo", str(repo), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _started(repo: Path, run_id: str, tasks=("a", "b")) -> bool:
    return all((repo / ".git/harness/worktrees" / run_id / f"{t}.1" / f"{t}.started").exists() for t in tasks)


def _kill_midflight(env: dict, client, tmp_path: Path, repo: Path, run_id: str, sandbox: str,
                    tasks: tuple[str, ...]) -> None:
    """Start a run whose agents hang, and SIGKILL the harness once they all work."""
    proc = _start(env, plan_file(tmp_path, run_id, sandbox=sandbox, command=ONCE, tasks=tasks), repo)
    try:
        wait_for(lambda: _started(repo, run_id, tasks), f"the agents of {run_id} to start")
        if sandbox == "docker":
            wait_for(lambda: len(_containers(client, run_id, status="running")) == len(tasks),
                     f"{len(tasks)} running containers")
    finally:
        proc.kill()
        proc.communicate(timeout=60)


def _worktrees(repo: Path, run_id: str) -> list[Path]:
    folder = repo / ".git/harness/worktrees" / run_id
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _all_refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def test_every_fix_doctor_prints_works_and_clears_its_warning(docker_daemon, tmp_path):
    env = _env(tmp_path)
    repo = make_repo(tmp_path / "repo")
    tag = uuid.uuid4().hex[:8]
    fin, kil, loc, gon, liv, oth = (f"{k}{tag}" for k in ("fin", "kil", "loc", "gon", "liv", "oth"))
    client = docker_daemon
    live_proc = None
    other = make_repo(tmp_path / "other")
    try:
        # A finished run that kept its worktrees, one of them then edited by hand.
        plan = write_plan(tmp_path / "fin.toml", f"""
            [run]
            sandbox = "docker"
            id = "{fin}"
            keep_worktrees = "all"
            [[task]]
            id = "a"
            command = "echo a > a.txt"
            [[task]]
            id = "b"
            command = "echo b > b.txt"
        """)
        done = _cli(env, repo, "run", str(plan))
        assert done.returncode == 0, done.stderr
        (repo / ".git/harness/worktrees" / fin / "b.1" / "notes.txt").write_text("mine\n")

        # Docker and local runs killed with SIGKILL mid-flight (their agents go on), and
        # one of them then losing its record. The leftover containers are all running:
        # a stopped one could be swept by anything calling `DockerSandbox.cleanup()` on
        # this shared daemon meanwhile.
        _kill_midflight(env, client, tmp_path, repo, kil, "docker", ("a", "b"))
        _kill_midflight(env, client, tmp_path, repo, loc, "local", ("a", "b"))
        _kill_midflight(env, client, tmp_path, repo, gon, "docker", ("a",))
        shutil.rmtree(repo / ".git/harness/runs" / gon)
        assert marked_processes(repo, loc)

        # Containers with the harness's labels of a run nobody has a record of: one
        # whose run folder is gone, one that mounts none.
        ghost = f"ghost{tag}"
        folder = tmp_path / "elsewhere/.git/harness/runs" / ghost / "tasks/a/1/harness"
        folder.mkdir(parents=True)
        labels = {"harness.sandbox": "docker", "harness.run": ghost}
        mounted = client.containers.run(IMAGE, ["sleep", "600"], labels=labels, name=f"harness-{ghost}-a",
                                        volumes={str(folder): {"bind": "/harness", "mode": "ro"}}, detach=True,
                                        network_mode="none")
        shutil.rmtree(tmp_path / "elsewhere")
        bare = client.containers.run(IMAGE, ["sleep", "600"], labels=labels, name=f"harness-{ghost}-b",
                                     network_mode="none", detach=True)

        # A killed run of another repository, and a run that is going right now.
        _kill_midflight(env, client, tmp_path, other, oth, "docker", ("a",))
        live_proc = _start(env, plan_file(tmp_path, liv, sandbox="docker", command=HANG, tasks=("a", "b")), repo)
        wait_for(lambda: _started(repo, liv), "the live agents to start")
        wait_for(lambda: len(_containers(client, liv, status="running")) == 2, "2 live containers")
        live_worktrees = _worktrees(repo, liv)
        refs = _all_refs(repo)

        checks = _doctor(env, repo)
        warned = {name: c for name, c in checks.items() if c["status"] == "warn"}
        assert list(warned) == ["interrupted runs", "leftover containers", "leftover worktrees",
                                "uncommitted work in leftover worktrees", "leftover processes"], checks
        assert sorted(warned["interrupted runs"]["items"]) == sorted([kil, loc])
        shown = "\n".join(warned["leftover containers"]["items"])
        for run_id, n in ((gon, 1), (kil, 2), (ghost, 2)):
            assert shown.count(f"run={run_id} ") == n, shown
        assert fin not in shown and liv not in shown and oth not in shown
        assert "of runs not running in other repositories" in warned["leftover containers"]["detail"]
        shown = "\n".join(warned["leftover worktrees"]["items"])
        assert shown.count(f"run={fin} ") == 1 and liv not in shown, shown
        # The killed runs' worktrees hold their agents' uncommitted work, which resume
        # keeps: they are not among those --force would drop. The run without a
        # record cannot be resumed: its work is.
        wts = (repo / ".git/harness/worktrees").resolve()
        assert warned["uncommitted work in leftover worktrees"]["items"] == [f"{wts / fin / 'b.1'} run={fin}",
                                                                             f"{wts / gon / 'a.1'} run={gon}"]
        assert {i.rsplit("run=", 1)[1] for i in warned["leftover processes"]["items"]} == {loc}
        assert all(c["fix"] for c in warned.values())
        assert [c["fix"] for c in checks.values() if c["fix"] and c["status"] == "ok"] == []

        for name, check in warned.items():
            fixed = subprocess.run(check["fix"], shell=True, executable="/bin/bash", cwd=repo, env=env,
                                   capture_output=True, text=True, timeout=300)
            assert fixed.returncode == 0, (check["fix"], fixed.stderr)
            assert "Traceback" not in fixed.stderr
            assert _cleared(_doctor(env, repo), name, tag), name

        after = _doctor(env, repo)
        assert all(_cleared(after, name, tag) for name in after), after
        for run_id in (fin, gon, kil, loc, ghost):
            assert _containers(client, run_id) == []
            assert _worktrees(repo, run_id) == []
        assert not marked_processes(repo, loc)
        assert not [line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
                    if line.startswith("worktree ") and any(f"/{r}/" in line for r in (fin, gon, kil, loc))]
        for gone in (mounted, bare):
            assert not client.containers.list(all=True, filters={"id": gone.id})
        # The live run and the other repository's run are as they were; no ref moved.
        assert len(_containers(client, liv, status="running")) == 2
        assert _worktrees(repo, liv) == live_worktrees and live_proc.poll() is None
        assert len(_containers(client, oth, status="running")) == 1
        # Resume added the killed runs' refs; clean moved or deleted none.
        assert set(refs.splitlines()) <= set(_all_refs(repo).splitlines())
        assert git(repo, "rev-parse", f"harness/{fin}/b")  # the branches stay
        for run_id in (kil, loc):  # resumed: the killed attempts' work is on their refs
            for t in "ab":
                assert git(repo, "show", f"refs/harness/{run_id}/{t}/1:{t}.txt") == "1"
                assert git(repo, "show", f"harness/{run_id}/{t}:{t}.txt") == "2"

        # Outside any repository the fix is still a command: it looks for orphans only.
        plain = tmp_path / "plain"
        plain.mkdir()
        assert "not a git repository" in _doctor(env, plain)["leftover worktrees"]["detail"]
        cleaned = _cli(env, plain, "clean", "--stale")
        assert cleaned.returncode == 0, cleaned.stderr
        assert "only containers whose run folder is gone" in cleaned.stdout
    finally:
        if live_proc is not None and live_proc.poll() is None:
            live_proc.send_signal(signal.SIGTERM)
            live_proc.communicate(timeout=120)
        for where, run_id in ((repo, liv), (other, oth)):
            _cli(env, where, "clean", run_id, "--force")
        kill_marked(f"HARNESS_DIR={(repo / '.git/harness/runs').resolve()}/".encode())
        for c in client.containers.list(all=True, filters={"label": "harness.run"}):
            if tag in c.labels.get("harness.run", ""):
                c.remove(force=True)



def test_a_sweep_keeps_an_interrupted_runs_work_and_refuses_bad_input(tmp_path):
    """`clean --stale --force` drops a finished run's edited worktree but never the work
    a killed run's agents left (resume commits it); the killed run's agents are stopped.
    Containers are not looked at here (the daemon is pointed elsewhere), so this test
    cannot reach the other's."""
    env = {**_env(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "fin.toml", '[run]\nsandbox = "local"\nid = "fin"\nkeep_worktrees = "all"\n'
                                              '[[task]]\nid = "a"\ncommand = "echo a > a.txt"\n')
    assert _cli(env, repo, "run", str(plan)).returncode == 0
    (repo / ".git/harness/worktrees/fin/a.1/notes.txt").write_text("mine\n")
    killed = _start(env, plan_file(tmp_path, "kil", sandbox="local", command=ONCE, tasks=("a", "b")), repo)
    try:
        wait_for(lambda: _started(repo, "kil"), "the agents to start")
    finally:
        killed.kill()
        killed.communicate(timeout=60)
    assert marked_processes(repo, "kil")
    try:
        _sweep_and_resume(env, repo, tmp_path / "nope")
    finally:
        kill_marked(f"HARNESS_DIR={(repo / '.git/harness/runs').resolve()}/".encode())


def _sweep_and_resume(env: dict, repo: Path, nope: Path) -> None:
    refs = _all_refs(repo)
    for args in (("clean",), ("clean", "kil", "--stale"), ("clean", "--stale", "--repo", str(nope))):
        refused = _cli(env, repo, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert not nope.exists()

    swept = _cli(env, repo, "clean", "--stale")
    assert swept.returncode == 0, swept.stderr
    assert "kept 3 worktree(s)" in swept.stderr and "harness resume RUN" in swept.stderr
    assert not marked_processes(repo, "kil")
    swept = _cli(env, repo, "clean", "--stale", "--force")
    assert swept.returncode == 0, swept.stderr
    assert _worktrees(repo, "fin") == []
    assert [p.name for p in _worktrees(repo, "kil")] == ["a.1", "b.1"]
    assert _all_refs(repo) == refs
    checks = _doctor(env, repo, code=1)  # 1: the daemon check fails
    assert [n for n, c in checks.items() if c["status"] == "warn"] == ["interrupted runs"], checks
    assert checks["docker daemon"]["status"] == "FAIL" and checks["docker daemon"]["fix"] is None
    assert checks["interrupted runs"]["fix"] == "harness resume kil"
    assert "not looked for: the Docker daemon is not reachable" in checks["leftover containers"]["detail"]
    resumed = subprocess.run(checks["interrupted runs"]["fix"], shell=True, cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for t in "ab":
        assert git(repo, "show", f"refs/harness/kil/{t}/1:{t}.txt") == "1"
