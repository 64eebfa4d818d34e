"""The built-in agent in the docker sandbox: its loop runs with the image's python3 and
the standard library only, reaches its scripted model through the run's gateway on the
fenced network, and its edit lands on the task's branch."""

from __future__ import annotations

import json

from gitutil import git, harness, make_repo, write_plan
from harness.gateway import ScriptedUpstream
from harness.records import RunRecord, TaskStatus

KEY = "sk-docker-builtin-0123456789abcdef"


def test_the_builtin_loop_runs_in_the_image_and_its_edit_lands(tmp_path, docker_daemon, run_id, monkeypatch):
    monkeypatch.setenv("DB_OPENAI_KEY", KEY)
    repo = make_repo(tmp_path / "repo")
    with ScriptedUpstream(input_tokens=50, output_tokens=5) as up:
        up.script([
            [{"name": "bash", "arguments": {"command": "python3 -c 'import sys; print(sys.prefix)' > where.txt; "
                                                       "sleep 600"}}],
            [{"name": "bash", "arguments": {"command": "echo from-docker > hello.txt"}},
             {"name": "bash", "arguments": {"command": "echo HARNESS_SUBMIT"}}],
        ])
        plan = write_plan(tmp_path / "plan.toml", f'''
            [run]
            sandbox = "docker"
            id = "{run_id}"
            agent = {{ type = "builtin", model = "gpt-4o", bash_timeout_s = 1 }}

            [[model.upstream]]
            name = "oa"
            protocol = "openai"
            base_url = "{up.url}/v1"
            api_key_env = "DB_OPENAI_KEY"
            models = ["gpt-*"]

            [[task]]
            id = "t"
            prompt = "Write hello.txt, then submit."
            ''')
        proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.stdout.strip(), proc.stderr
    task = RunRecord.model_validate_json(proc.stdout).tasks["t"]
    assert task.status == TaskStatus.succeeded, (task.exit_reason, task.attempts[0].output_tail)
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "show", f"harness/{run_id}/t:hello.txt") == "from-docker"
    assert git(repo, "show", f"harness/{run_id}/t:where.txt") == "/usr"  # the image's python, not the host's
    a = task.attempts[0]
    assert a.steps == 3 and a.spend.calls == 2 and a.sandbox == "docker"
    # the hanging command was cut inside the container and the model was told
    second = up.requests[1]["body"]["messages"]
    assert second[-1]["content"].startswith("timed out after 1s")
    hdir = repo / ".git" / "harness" / "runs" / run_id / "tasks" / "t" / "1" / "harness"
    events = [json.loads(line) for line in (hdir / "trajectory.jsonl").read_text().splitlines()]
    assert events[-1]["status"] == "submitted"
    assert all(KEY not in line for line in (hdir / "trajectory.jsonl").read_text().splitlines())
