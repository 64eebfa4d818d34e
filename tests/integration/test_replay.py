"""`harness replay`, through the CLI with the local sandbox: a run's agents (small
Python scripts calling the gateway with urllib) are recorded against a scripted
upstream on loopback, then rerun with the gateway serving the recording, with the
upstream stopped and its key variable unset."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from gitutil import git, harness, make_repo, write_plan
from harness.gateway import ScriptedUpstream
from harness.records import RunRecord

KEY = "sk-replay-0123456789abcdef"

AGENT = textwrap.dedent('''
    """Asks its model twice (the second time with the first answer and a hint read from
    a file outside the repository), writes the answers into the checkout."""
    import json, os, sys, urllib.error, urllib.request

    def call(messages, stream=False):
        body = {"model": "gpt-4o", "stream": stream, "messages": messages}
        req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json",
                                              "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    hint = open(sys.argv[1]).read().strip()
    msgs = [{"role": "user", "content": os.environ["HARNESS_PROMPT"]}]
    s1, first = call(msgs)
    print("first:", s1, flush=True)
    msgs += [{"role": "assistant", "content": first}, {"role": "user", "content": "hint: " + hint}]
    s2, second = call(msgs, stream=True)
    print("second:", s2, second[:300], flush=True)
    os.makedirs("out", exist_ok=True)
    open("out/answer.txt", "w").write(first + "\\n---\\n" + second)
    if "copy" in sys.argv[2:]:  # something the model never sees goes into the tree
        open("out/copied.txt", "w").write(open(os.path.join(os.path.dirname(sys.argv[1]), "extra.txt")).read())
    if os.environ["HARNESS_ATTEMPT"] == "1" and "flaky" in sys.argv[2:]:
        sys.exit(5)  # a first attempt that fails after talking to its model: the task retries
    sys.exit(0 if s1 == s2 == 200 else 3)
''')


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("RP_OPENAI_KEY", KEY)


@pytest.fixture
def setup(tmp_path):
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    hint = tmp_path / "hint.txt"
    hint.write_text("use tabs\n")
    return f"{sys.executable} {agent} {hint}", hint


def record_run(tmp_path: Path, run_id: str, url: str, tasks: str) -> tuple[Path, RunRecord]:
    repo = tmp_path / "repo"
    if not repo.exists():
        make_repo(repo)
    plan = write_plan(tmp_path / f"{run_id}.toml", f'''
[run]
sandbox = "local"
id = "{run_id}"

[[model.upstream]]
name = "oa"
protocol = "openai"
base_url = "{url}/v1"
api_key_env = "RP_OPENAI_KEY"
models = ["gpt-*"]
input_price_per_mtok = 1.0
output_price_per_mtok = 10.0
''' + tasks)
    proc = harness("run", str(plan), "--repo", str(repo), "--json")
    assert proc.stdout.strip(), proc.stderr
    return repo, RunRecord.model_validate_json(proc.stdout)


def tree(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")


def test_a_deterministic_agent_replays_to_the_same_trees_without_upstream_or_key(tmp_path, key, setup,
                                                                                 monkeypatch):
    agent, _ = setup
    with ScriptedUpstream(input_tokens=30, output_tokens=7) as upstream:
        repo, record = record_run(tmp_path, "r1", upstream.url, f'''
[[task]]
id = "a"
prompt = "write a greeting"
command = "{agent}"

[[task]]
id = "flaky"
prompt = "write another"
command = "{agent} flaky"
retries = 1

[[task]]
id = "quiet"
command = "echo no model > quiet.txt"
''')
        assert {t: r.status.value for t, r in record.tasks.items()} == {
            "a": "succeeded", "flaky": "succeeded", "quiet": "succeeded"}
        assert len(record.tasks["flaky"].attempts) == 2
        calls = upstream.calls
    assert calls == 6
    monkeypatch.delenv("RP_OPENAI_KEY")  # and the upstream is gone

    proc = harness("replay", "r1", "--repo", str(repo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "replay r1.replay1 of r1: 2 of 2 task(s) reproduced their tree", proc.stdout
    assert any(ln.startswith("a: same tree ") for ln in lines)
    assert any(ln.startswith("flaky: same tree ") and "2 attempt(s)" in ln for ln in lines)
    assert not any(ln.startswith("quiet") for ln in lines)  # no model call: nothing to replay
    for t in ("a", "flaky"):
        assert tree(repo, f"harness/r1.replay1/{t}") == tree(repo, f"harness/r1/{t}")
        assert git(repo, "rev-parse", f"harness/r1.replay1/{t}") != git(repo, "rev-parse", f"harness/r1/{t}")
    # each retry replayed as it happened: attempt 1 failed again, from the same base, to the same tree
    assert tree(repo, "refs/harness/r1.replay1/flaky/1") == tree(repo, "refs/harness/r1/flaky/1")
    assert "hello from upstream" in git(repo, "show", "harness/r1.replay1/a:out/answer.txt")

    shown = harness("show", "r1.replay1", "--json", "--repo", str(repo))
    assert shown.returncode == 0, shown.stderr
    replayed = json.loads(shown.stdout)
    assert replayed["tasks"]["flaky"]["attempts"][0]["status"] == "failed"
    assert replayed["tasks"]["a"]["spend"]["calls"] == 2
    text = harness("show", "r1.replay1", "a", "--repo", str(repo))
    assert text.returncode == 0 and "model #1" in text.stdout and "replayed" in text.stdout, text.stdout
    runs = repo / ".git" / "harness" / "runs"
    report = json.loads((runs / "r1.replay1" / "replay.json").read_text())
    assert report["replay_of"] == "r1" and [t["task_id"] for t in report["tasks"]] == ["a", "flaky"]
    trace = [json.loads(ln) for ln in (runs / "r1.replay1" / "tasks" / "a" / "1" / "model.jsonl").open()]
    assert [e["outcome"] for e in trace] == ["replayed", "replayed"]

    # a second replay of one task gets the next id
    again = harness("replay", "r1", "a", "--json", "--repo", str(repo))
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["run_id"] == "r1.replay2" and [t["task_id"] for t in data["tasks"]] == ["a"]


def test_an_agent_that_changes_its_request_is_stopped_at_the_first_divergence(tmp_path, key, setup, monkeypatch):
    agent, hint = setup
    extra = tmp_path / "extra.txt"
    extra.write_text("one\n")
    with ScriptedUpstream() as upstream:
        repo, record = record_run(tmp_path, "r2", upstream.url, f'''
[[task]]
id = "a"
prompt = "write a greeting"
command = "{agent}"

[[task]]
id = "b"
prompt = "write a greeting"
command = "{agent} copy"
''')
        assert record.ok
    monkeypatch.delenv("RP_OPENAI_KEY")
    extra.write_text("two\n")  # what b writes, and never sends, changes

    only_b = harness("replay", "r2", "b", "--repo", str(repo))
    assert only_b.returncode == 1, only_b.stdout + only_b.stderr
    lines = only_b.stdout.strip().splitlines()
    assert lines[0].startswith("b: different tree: attempt 1 left tree "), only_b.stdout
    assert lines[-1] == "replay r2.replay1 of r2: 0 of 1 task(s) reproduced their tree"
    extra.write_text("one\n")
    assert harness("replay", "r2", "b", "--repo", str(repo)).returncode == 0  # as recorded: reproduced
    hint.write_text("use spaces\n")  # what the agent sends in its second call changes

    proc = harness("replay", "r2", "a", "--repo", str(repo))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("a: diverged: attempt 1: harness replay diverged at call #1 (gpt-4o): "
                               "$.messages[2].content: \"hint: use tabs\" != \"hint: use spaces\""), proc.stdout
    assert lines[-1] == ("replay r2.replay3 of r2: 0 of 1 task(s) reproduced their tree, "
                         "1 diverged from the recording")
    # the first call was served, the second refused, and the attempt ended there
    runs = repo / ".git" / "harness" / "runs"
    trace = sorted((json.loads(ln) for ln in (runs / "r2.replay3" / "tasks" / "a" / "1" / "model.jsonl").open()),
                   key=lambda e: e["seq"])
    assert [e["outcome"] for e in trace] == ["replayed", "replay_diverged"]
    out = RunRecord.model_validate_json((runs / "r2.replay3" / "record.json").read_text())
    assert out.tasks["a"].status.value == "failed"
    assert "call #1" in out.tasks["a"].exit_reason and "$.messages[2].content" in out.tasks["a"].exit_reason

    data = json.loads(harness("replay", "r2", "--json", "--repo", str(repo)).stdout)
    assert data["run_id"] == "r2.replay4" and [t["task_id"] for t in data["tasks"]] == ["a", "b"]
    assert "$.messages[2].content" in data["tasks"][0]["attempts"][0]["diverged"]


def test_bad_input_is_refused_before_anything_is_created(tmp_path, key, setup):
    agent, _ = setup
    with ScriptedUpstream() as upstream:
        repo, record = record_run(tmp_path, "r3", upstream.url, f'''
[[task]]
id = "a"
command = "{agent}"

[[task]]
id = "quiet"
command = "echo no model > quiet.txt"
''')
        repo, silent = record_run(tmp_path, "r4", upstream.url, '''
[[task]]
id = "quiet"
command = "echo no model > quiet.txt"
''')
    assert record.ok and silent.ok
    runs = repo / ".git" / "harness" / "runs"
    before = sorted(p.name for p in runs.iterdir())
    refs = git(repo, "for-each-ref")
    for args, says in [(["nope"], "unknown run"), (["../x"], "invalid run id"),
                       (["r3", "zzz"], "no finished task 'zzz'"),
                       (["r3", "quiet"], "task 'quiet' of run 'r3' made no model call"),
                       (["r4"], "run 'r4' has no recorded model calls")]:
        proc = harness("replay", *args, "--repo", str(repo))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert says in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert sorted(p.name for p in runs.iterdir()) == before
    assert git(repo, "for-each-ref") == refs


def test_a_killed_replay_is_not_resumed_as_a_run(tmp_path, key, setup, monkeypatch):
    agent, _ = setup
    with ScriptedUpstream() as upstream:
        repo, record = record_run(tmp_path, "r5", upstream.url, f'''
[[task]]
id = "a"
command = "{agent}"
''')
    assert record.ok
    monkeypatch.delenv("RP_OPENAI_KEY")
    monkeypatch.setenv("HARNESS_FAILPOINTS", "commit:1")  # the replay dies as it commits its attempt
    killed = harness("replay", "r5", "--repo", str(repo))
    assert killed.returncode < 0 or killed.returncode == 137, killed.stderr
    monkeypatch.delenv("HARNESS_FAILPOINTS")
    proc = harness("resume", "r5.replay1", "--repo", str(repo))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is a replay of run 'r5'" in proc.stderr and "harness replay r5" in proc.stderr
