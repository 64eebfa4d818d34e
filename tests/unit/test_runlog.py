"""The quick commands' read path (harness/repo/runlog.py): it finds the runs where git
would, reads a record as the validated path does, and imports neither git nor the
record models."""

from __future__ import annotations

import subprocess
import sys

from gitutil import git, make_repo, write_plan
from harness.cli import views
from harness.records import RunRecord
from harness.repo.runlog import RunLog, find_common_dir
from harness.repo.workspace import Workspace
from harness.run.lifecycle import run_plan


def test_find_common_dir_agrees_with_git(tmp_path):
    repo = make_repo(tmp_path / "repo", {"src/a.py": "x = 1\n"})
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "linked"))
    for where in (repo, repo / "src", tmp_path / "linked"):
        assert find_common_dir(where) == Workspace(where).common == (repo / ".git").resolve()
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    for odd in (tmp_path / "bare.git", tmp_path / "nowhere", tmp_path):  # left to git, which says why
        assert find_common_dir(odd) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / ".git").write_text("not a gitdir line\n")
    assert find_common_dir(tmp_path / "broken") is None


def test_a_raw_record_renders_as_the_validated_one(tmp_path):
    repo = make_repo(tmp_path / "repo")
    plan = write_plan(tmp_path / "plan.toml", '''
        [run]
        sandbox = "local"
        id = "r"

        [[task]]
        id = "ok"
        command = "echo hi > hi.txt; echo '::harness-step:: write'"

        [[task]]
        id = "bad"
        command = "echo no; exit 4"
        ''')
    run_plan(plan, repo)
    raw = RunLog(Workspace(repo).root / "runs", "r").load_raw()
    validated = RunRecord.model_validate(raw).model_dump(mode="json")
    assert views.run_detail(raw) == views.run_detail(validated)
    for task in ("ok", "bad"):
        assert views.task_detail(raw, task) == views.task_detail(validated, task)
    assert "1 step(s):" in views.task_detail(raw, "ok") and "exit code 4" in views.run_detail(raw)


def test_status_and_show_import_neither_git_nor_the_record_models(tmp_path):
    repo = make_repo(tmp_path / "repo")
    run_plan(write_plan(tmp_path / "plan.toml", '[run]\nsandbox = "local"\nid = "r"\n\n'
                        '[[task]]\nid = "t"\ncommand = "true"\n'), repo)
    probe = ("import sys\nfrom harness.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('pydantic', 'pygit2', 'docker') if m in sys.modules)\n"
             "print('HEAVY', ','.join(heavy) or '-')\n")
    for args in (["status"], ["show", "r"], ["show", "r", "t"], ["show", "r", "--json"]):
        out = subprocess.run([sys.executable, "-c", probe, *args, "--repo", str(repo)], capture_output=True,
                             text=True, check=True).stdout
        assert out.splitlines()[-1] == "HEAVY -", (args, out)
        assert "r" in out
