"""`harness run` end to end on real repositories, with the local sandbox."""

from __future__ import annotations

import json

import pygit2
import pytest

from gitutil import git, harness, make_repo, snapshot, write_plan
from harness.run.lifecycle import run_plan
from harness.records import RunRecord, TaskStatus


def _plan(tmp_path, body):
    return write_plan(tmp_path / "plan.toml", body)


def test_eight_tasks_give_eight_branches_with_one_commit_each(tmp_path):
    repo = make_repo(tmp_path / "repo", n_files=40)
    tasks = "".join(f"""
[[task]]
id = "t{i}"
prompt = "write file {i}"
command = "sleep 0.3; echo change-{i} > out{i}.txt"
write_scope = ["out{i}.txt"]
""" for i in range(8))
    plan = _plan(tmp_path, '[run]\nsandbox = "local"\nmax_parallel = 8\nid = "eight"\n' + tasks)
    before = snapshot(repo)
    proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.returncode == 0, proc.stderr
    record = RunRecord.model_validate_json(proc.stdout)
    assert before == snapshot(repo)
    base = record.base_commit
    assert base == git(repo, "rev-parse", "HEAD")
    for i in range(8):
        branch = f"harness/eight/t{i}"
        assert git(repo, "rev-list", "--count", f"{base}..{branch}") == "1"
        assert git(repo, "show", f"{branch}:out{i}.txt") == f"change-{i}"
        assert git(repo, "diff", "--name-only", base, branch) == f"out{i}.txt"
        msg = git(repo, "log", "-1", "--format=%B", branch)
        for trailer in ("Harness-Run: eight", f"Harness-Task: t{i}", "Harness-Attempt: 1",
                        "Harness-Agent: command"):
            assert trailer in msg
        assert git(repo, "log", "-1", "--format=%an <%ae>", branch) == "harness <harness@localhost>"
        assert record.tasks[f"t{i}"].head_commit == git(repo, "rev-parse", branch)
    # they ran at once: every attempt started before any ended
    attempts = [r.attempts[0] for r in record.tasks.values()]
    assert max(a.started_at for a in attempts) < min(a.ended_at for a in attempts)


def test_failing_task_is_retried_and_every_attempt_recorded(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"
        id = "retry"
        backoff_s = 0.05

        [[task]]
        id = "bad"
        command = "echo try-$HARNESS_ATTEMPT > try.txt; echo broken >&2; exit 3"
        retries = 2

        [[task]]
        id = "good"
        command = "echo ok > ok.txt"
    """)
    proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.returncode == 1
    record = RunRecord.model_validate_json(proc.stdout)
    bad = record.tasks["bad"]
    assert bad.status == TaskStatus.failed
    assert [a.number for a in bad.attempts] == [1, 2, 3]
    assert bad.retries == 2
    assert all(a.exit_code == 3 and a.status == TaskStatus.failed for a in bad.attempts)
    assert "broken" in bad.attempts[-1].output_tail
    assert bad.branch is None
    # each failed attempt stays reviewable on its hidden ref
    for n in (1, 2, 3):
        assert git(repo, "show", f"refs/harness/retry/bad/{n}:try.txt") == f"try-{n}"
    assert record.tasks["good"].status == TaskStatus.succeeded


def test_retry_succeeds_on_second_attempt(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"
        backoff_s = 0

        [[task]]
        id = "flaky"
        command = 'test "$HARNESS_ATTEMPT" -ge 2 && echo done > d.txt'
        retries = 3
    """)
    record = run_plan(plan, repo, run_id="r2")
    result = record.tasks["flaky"]
    assert result.status == TaskStatus.succeeded
    assert [a.status for a in result.attempts] == [TaskStatus.failed, TaskStatus.succeeded]
    assert git(repo, "log", "-1", "--format=%B", "harness/r2/flaky").count("Harness-Attempt: 2") == 1


def test_timeout_kills_the_task_while_others_finish(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"
        max_parallel = 3

        [[task]]
        id = "hang"
        command = "sleep 120 & sleep 120"
        timeout_s = 2

        [[task]]
        id = "a"
        command = "sleep 1; echo a > a.txt"

        [[task]]
        id = "b"
        command = "echo b > b.txt"
    """)
    record = run_plan(plan, repo, run_id="to")
    hang = record.tasks["hang"]
    assert hang.status == TaskStatus.timed_out
    assert hang.exit_reason == "timeout"
    assert record.tasks["a"].status == TaskStatus.succeeded
    assert record.tasks["b"].status == TaskStatus.succeeded


def test_dependent_task_sees_its_dependencies_changes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"

        [[task]]
        id = "one"
        command = "echo 1 > one.txt"

        [[task]]
        id = "two"
        command = "echo 2 > two.txt"

        [[task]]
        id = "both"
        depends_on = ["one", "two"]
        command = "cat one.txt two.txt > both.txt"

        [[task]]
        id = "after"
        depends_on = ["both"]
        command = "cat both.txt both.txt > after.txt"
    """)
    record = run_plan(plan, repo, run_id="deps")
    assert record.ok
    assert git(repo, "show", "harness/deps/both:both.txt") == "1\n2"
    assert git(repo, "show", "harness/deps/after:after.txt") == "1\n2\n1\n2"
    # the dependent's history holds its dependencies' commits
    heads = {t: record.tasks[t].head_commit for t in ("one", "two")}
    for head in heads.values():
        git(repo, "merge-base", "--is-ancestor", head, "harness/deps/both")


def test_failed_dependency_fails_dependents_with_the_reason(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"

        [[task]]
        id = "root"
        command = "exit 1"

        [[task]]
        id = "child"
        depends_on = ["root"]
        command = "echo never > x.txt"

        [[task]]
        id = "grandchild"
        depends_on = ["child"]
        command = "echo never > y.txt"
    """)
    record = run_plan(plan, repo, run_id="df")
    assert record.tasks["child"].status == TaskStatus.dependency_failed
    assert "root" in record.tasks["child"].exit_reason
    assert record.tasks["grandchild"].status == TaskStatus.dependency_failed
    assert record.tasks["grandchild"].attempts == []


def test_scope_violation_is_caught_and_kept_off_the_branch(tmp_path):
    repo = make_repo(tmp_path / "repo", files={"src/a.py": "a = 1\n", "docs/x.md": "x\n"})
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"

        [[task]]
        id = "inside"
        command = "echo 'a = 2' > src/a.py"
        write_scope = ["src/**"]

        [[task]]
        id = "outside"
        command = "echo 'a = 3' > src/a.py; echo y > docs/x.md"
        write_scope = ["src/**"]
    """)
    record = run_plan(plan, repo, run_id="scope")
    assert record.tasks["inside"].status == TaskStatus.succeeded
    out = record.tasks["outside"]
    assert out.status == TaskStatus.scope_violation
    assert out.attempts[0].scope_violations == ["docs/x.md"]
    assert out.branch is None
    assert git(repo, "show", "refs/harness/scope/outside/1:docs/x.md") == "y"
    with pytest.raises(Exception):
        git(repo, "rev-parse", "--verify", "harness/scope/outside")


def test_stalled_attempt_is_stopped_and_retried_and_steps_are_the_trace(tmp_path):
    """stall_s from the run, max_steps from a strategy (a task may override it): a
    silent first attempt ends stalled and is retried; announced steps become the
    attempt's tool trace; one step past the budget stops the attempt."""
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "brief.toml").write_text(
        'name = "brief"\nprompt = "be brief"\ncommand = "for s in plan edit test; do echo \\"$HARNESS_STEP_MARK $s\\"; done; '
        'echo x > brief.txt"\nmax_steps = 2\n')
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"
        stall_s = 1.5
        backoff_s = 0

        [[task]]
        id = "quiet"
        retries = 1
        command = 'echo "$HARNESS_STEP_MARK look around"; test "$HARNESS_ATTEMPT" -ge 2 || sleep 120; echo "$HARNESS_STEP_MARK write"; echo ok > q.txt'

        [[task]]
        id = "brief"
        strategy = "strategies/brief.toml"

        [[task]]
        id = "roomy"
        strategy = "strategies/brief.toml"
        max_steps = 5
    """)
    record = run_plan(plan, repo, run_id="st")

    quiet = record.tasks["quiet"]
    assert quiet.status == TaskStatus.succeeded
    first, second = quiet.attempts
    assert first.status == TaskStatus.stalled and first.reason == "no output for 1.5s"
    assert first.steps == 1 and first.tool_trace == ["look around"]
    assert second.tool_trace == ["look around", "write"]
    assert git(repo, "show", "harness/st/quiet:q.txt") == "ok"

    brief = record.tasks["brief"]
    assert brief.status == TaskStatus.failed and brief.exit_reason == "step budget of 2 spent"
    assert brief.attempts[0].tool_trace == ["plan", "edit", "test"]
    assert record.tasks["roomy"].status == TaskStatus.succeeded
    spec = json.loads((repo / ".git/harness/runs/st/tasks/roomy/1/harness/task.json").read_text())
    assert spec["budget"]["steps"] == 5 and spec["budget"]["stall_s"] == 1.5
    shown = harness("show", "st", "quiet", "--repo", str(repo)).stdout
    assert "2 step(s):" in shown and "- write" in shown


def test_strategy_file_settings_are_inherited(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "apply.sh").write_text("echo from-strategy > s.txt\n")
    (tmp_path / "strategies" / "s1.toml").write_text(
        'name = "s1"\nprompt = "do the thing"\ncommand = "sh $HARNESS_DIR/context/apply.sh"\n'
        'files = ["apply.sh"]\nwrite_scope = ["s.txt"]\n')
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"

        [[task]]
        id = "s"
        strategy = "strategies/s1.toml"
        context = { notes = ["keep it small"] }
    """)
    record = run_plan(plan, repo, run_id="strat")
    result = record.tasks["s"]
    assert result.status == TaskStatus.succeeded, result.attempts[0].output_tail
    assert result.strategy == "s1"
    assert git(repo, "show", "harness/strat/s:s.txt") == "from-strategy"
    assert "Harness-Strategy: s1" in git(repo, "log", "-1", "--format=%B", "harness/strat/s")
    spec = json.loads((repo / ".git/harness/runs/strat/tasks/s/1/harness/task.json").read_text())
    assert spec["prompt"] == "do the thing" and spec["notes"] == ["keep it small"]
    assert spec["write_scope"] == ["s.txt"] and spec["context_files"] == ["apply.sh"]


def test_task_spec_and_env_reach_the_agent(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"

        [[task]]
        id = "env"
        prompt = "hello agent"
        command = 'printf "%s|%s|%s|%s" "$HARNESS_TASK" "$HARNESS_RUN" "$HARNESS_ATTEMPT" "$HARNESS_PROMPT" > env.txt; python3 -c "import json,os; print(json.load(open(os.environ[\\"HARNESS_TASK_FILE\\"]))[\\"task_id\\"])" > spec.txt'
    """)
    record = run_plan(plan, repo, run_id="envrun")
    assert record.ok, record.tasks["env"].attempts[0].output_tail
    assert git(repo, "show", "harness/envrun/env:env.txt") == "env|envrun|1|hello agent"
    assert git(repo, "show", "harness/envrun/env:spec.txt") == "env"


def test_store_events_show_and_clean(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, """
        [run]
        sandbox = "local"
        id = "st"
        keep_worktrees = "all"

        [[task]]
        id = "a"
        command = "echo a > a.txt; echo some output"
    """)
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    run_dir = repo / ".git/harness/runs/st"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["run_created", "run_started"] and kinds[-1] == "run_ended"
    assert {"attempt_started", "attempt_finished", "task_finished"} <= set(kinds)
    assert all(e["run"] == "st" for e in events)
    assert "some output" in (run_dir / "tasks/a/1/output.log").read_text()

    shown = harness("show", "st", "a", "--repo", str(repo))
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    assert json.loads(harness("show", "st", "--repo", str(repo), "--json").stdout)["run_id"] == "st"
    assert "st" in harness("status", "--repo", str(repo)).stdout

    worktree = repo / ".git/harness/worktrees/st/a.1"
    assert worktree.is_dir()
    assert harness("clean", "st", "--repo", str(repo)).returncode == 0
    assert not worktree.exists()
    assert git(repo, "rev-parse", "--verify", "harness/st/a")
    assert "a.1" not in git(repo, "worktree", "list")


def test_clean_keeps_a_worktree_with_uncommitted_changes_unless_forced(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = _plan(tmp_path, '[run]\nsandbox = "local"\nid = "dirty"\nkeep_worktrees = "all"\n[[task]]\nid = "a"\ncommand = "echo a > a.txt"\n')
    assert harness("run", str(plan), "--repo", str(repo)).returncode == 0
    worktree = repo / ".git/harness/worktrees/dirty/a.1"
    (worktree / "user-edit.txt").write_text("precious\n")
    proc = harness("clean", "dirty", "--repo", str(repo))
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (worktree / "user-edit.txt").exists()
    assert harness("clean", "dirty", "--repo", str(repo), "--force").returncode == 0
    assert not worktree.exists()


def test_worktree_is_a_real_detached_checkout(tmp_path):
    repo = make_repo(tmp_path / "repo", n_files=20)
    plan = _plan(tmp_path, '[run]\nsandbox = "local"\nid = "wt"\nkeep_worktrees = "all"\n[[task]]\nid = "a"\n'
                 'command = "git status --porcelain > ../status.txt; git rev-parse HEAD > ../head.txt"\n')
    record = run_plan(plan, repo)
    wt_parent = repo / ".git/harness/worktrees/wt"
    assert (wt_parent / "status.txt").read_text() == ""
    assert (wt_parent / "head.txt").read_text().strip() == record.base_commit
    assert pygit2.Repository(str(wt_parent / "a.1")).head_is_detached


def test_local_sandbox_warns_that_it_does_not_isolate(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '[[task]]\nid = "a"\ncommand = "true"\n')
    proc = harness("run", str(plan), "--repo", str(repo), "--sandbox", "local")
    assert proc.returncode == 0
    assert "does not isolate" in proc.stderr
