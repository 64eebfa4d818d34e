"""`harness run` with the docker sandbox (the default), against the real daemon."""

from __future__ import annotations

import os

from gitutil import git, harness, make_repo, snapshot, write_plan
from harness.run.lifecycle import run_plan
from harness.records import TaskStatus


def test_twenty_agents_at_once_each_branch_holds_only_its_own_change(docker_daemon, tmp_path):
    repo = make_repo(tmp_path / "repo", n_files=30)
    tasks = "".join(f"""
[[task]]
id = "a{i:02d}"
command = "echo agent-{i} > out{i:02d}.txt && id -u > uid{i:02d}.txt"
""" for i in range(20))
    plan = write_plan(tmp_path / "plan.toml", f'[run]\nmax_parallel = 20\nid = "dock20"\nkeep_worktrees = "all"\n{tasks}')
    before = snapshot(repo)
    record = run_plan(plan, repo)
    assert snapshot(repo) == before
    assert record.sandbox == "docker" and record.image_id and record.image_id.startswith("sha256:")
    assert record.ok, {t: r.exit_reason for t, r in record.tasks.items() if r.status != TaskStatus.succeeded}
    for i in range(20):
        branch = f"harness/dock20/a{i:02d}"
        changed = git(repo, "diff", "--name-only", record.base_commit, branch).splitlines()
        assert changed == [f"out{i:02d}.txt", f"uid{i:02d}.txt"]
        assert git(repo, "show", f"{branch}:out{i:02d}.txt") == f"agent-{i}"
        assert git(repo, "show", f"{branch}:uid{i:02d}.txt") == str(os.getuid())
        assert all(a.sandbox == "docker" and a.image_id == record.image_id
                   for a in record.tasks[f"a{i:02d}"].attempts)
    # files written in the container belong to the invoking user
    wt = repo / ".git/harness/worktrees/dock20/a00.1/out00.txt"
    assert wt.stat().st_uid == os.getuid()


def test_memory_hog_and_fork_bomb_end_with_the_right_status_while_others_finish(docker_daemon, tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", """
        [run]
        max_parallel = 4
        id = "limits"
        timeout_s = 60

        [[task]]
        id = "hog"
        command = "python3 -c 'b = []\\nwhile True: b.append(bytearray(16 << 20))'"
        sandbox = { type = "docker", memory = "128m" }

        [[task]]
        id = "bomb"
        command = "python3 -c 'import os\\nwhile True: os.fork()'"
        sandbox = { type = "docker", pids_limit = 64 }

        [[task]]
        id = "fine"
        command = "echo fine > fine.txt"

        [[task]]
        id = "also-fine"
        command = "sleep 1; echo ok > ok.txt"
    """)
    record = run_plan(plan, repo)
    hog, bomb = record.tasks["hog"], record.tasks["bomb"]
    assert hog.status == TaskStatus.crashed and hog.exit_reason == "oom"
    assert bomb.status == TaskStatus.failed and bomb.attempts[0].exit_code not in (0, None)
    assert record.tasks["fine"].status == TaskStatus.succeeded
    assert record.tasks["also-fine"].status == TaskStatus.succeeded
    assert git(repo, "show", "harness/limits/fine:fine.txt") == "fine"


def test_unreachable_daemon_is_one_line_that_names_the_local_sandbox(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[[task]]\nid = "a"\ncommand = "true"\n')
    before = snapshot(repo)
    env_host = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"unix://{tmp_path}/no-daemon.sock"
    try:
        proc = harness("run", str(plan), "--repo", str(repo))
    finally:
        if env_host is None:
            os.environ.pop("DOCKER_HOST")
        else:
            os.environ["DOCKER_HOST"] = env_host
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0] and "--sandbox local" in lines[0]
    assert snapshot(repo) == before
    assert not (repo / ".git/harness").exists()

