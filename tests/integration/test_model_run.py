"""Runs with a [model] table, through the CLI with the local sandbox: agents are command
agents (small Python or curl scripts) that call the run's gateway with their token,
in front of a scripted upstream on loopback."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gitutil import git, harness, make_repo, snapshot, write_plan
from harness.gateway import ScriptedUpstream, read_trace
from harness.records import RunRecord, TaskStatus

OPENAI_KEY = "sk-modelrun-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-modelrun-fedcba9876543210"

AGENT = textwrap.dedent('''
    """A tiny agent: asks its model over the gateway, the way an SDK would."""
    import json, os, sys, urllib.error, urllib.request

    def step(what):
        print("::harness-step:: " + what, flush=True)

    def call(protocol, stream=False):
        if protocol == "openai":
            url = os.environ["OPENAI_BASE_URL"] + "/chat/completions"
            headers = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
            body = {"model": os.environ.get("HARNESS_MODEL", "gpt-4o"), "stream": stream,
                    "messages": [{"role": "user", "content": os.environ.get("HARNESS_PROMPT", "hi")}]}
        else:
            url = os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages"
            headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
            body = {"model": os.environ.get("HARNESS_MODEL", "claude-x"), "max_tokens": 64, "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]}
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    mode, protocol = sys.argv[1], sys.argv[2]
    if mode == "env":
        for k, v in sorted(os.environ.items()):
            print(f"{k}={v}")
    if mode in ("once", "env"):
        step("ask the model")
        status, text = call(protocol)
        step("ask again, streamed")
        s2, streamed = call(protocol, stream=True)
        step("write the answer")
        open("answer.txt", "w").write(text + "\\n" + streamed)
        sys.exit(0 if status == s2 == 200 else 3)
    if mode == "loop":  # until the gateway says no
        n = 0
        while True:
            step(f"call {n}")
            status, text = call(protocol)
            if status != 200:
                print(f"refused: {status} {text}", flush=True)
                open("calls.txt", "w").write(str(n))
                sys.exit(4)
            n += 1
    if mode == "quiet":  # one slow call, silent while it waits
        status, text = call(protocol)
        open("answer.txt", "w").write(text)
        sys.exit(0 if status == 200 else 3)
''')


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("MR_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("MR_ANTHROPIC_KEY", ANTHROPIC_KEY)


@pytest.fixture
def upstream():
    with ScriptedUpstream(input_tokens=100, output_tokens=20) as up:
        yield up


@pytest.fixture
def agent(tmp_path) -> str:
    path = tmp_path / "agent.py"
    path.write_text(AGENT)
    return f"{sys.executable} {path}"


def upstreams(url: str, **over) -> str:
    """An OpenAI and an Anthropic upstream, both at `url`."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in over.items())
    return textwrap.dedent(f'''
        [[model.upstream]]
        name = "oa"
        protocol = "openai"
        base_url = "{url}/v1"
        api_key_env = "MR_OPENAI_KEY"
        models = ["gpt-*"]
        input_price_per_mtok = 1.0
        output_price_per_mtok = 10.0
        retries = 1
        backoff_s = 0.01
        ''') + extra + textwrap.dedent(f'''
        [[model.upstream]]
        name = "an"
        protocol = "anthropic"
        base_url = "{url}/v1"
        api_key_env = "MR_ANTHROPIC_KEY"
        models = ["claude-*"]
        input_price_per_mtok = 3.0
        output_price_per_mtok = 15.0
        ''')


def plan(tmp_path: Path, run_id: str, body: str, run_extra: str = "") -> Path:
    return write_plan(tmp_path / "plan.toml",
                      f'[run]\nsandbox = "local"\nid = "{run_id}"\n{run_extra}\n' + body)


def run(tmp_path: Path, plan_path: Path, *args: str):
    repo = tmp_path / "repo"
    if not repo.exists():
        make_repo(repo)
    proc = harness("run", str(plan_path), "--repo", str(repo), "--json", *args)
    record = RunRecord.model_validate_json(proc.stdout) if proc.stdout.strip() else None
    return proc, record, repo / ".git" / "harness" / "runs"


def test_agents_reach_their_model_through_the_gateway_and_spend_is_recorded(tmp_path, keys, upstream, agent):
    p = plan(tmp_path, "m1", upstreams(upstream.url) + f'''
[[task]]
id = "oa"
command = "{agent} once openai"

[[task]]
id = "an"
command = "{agent} once anthropic"

[[task]]
id = "curl"
command = """curl -sS -f "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" \\
  -H 'content-type: application/json' -d '{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "hi"}}]}}' \\
  > curl.json"""
''')
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc, record, runs = run(tmp_path, p)
    assert proc.returncode == 0, proc.stderr
    assert before == snapshot(repo)
    assert {t: r.status for t, r in record.tasks.items()} == {t: TaskStatus.succeeded for t in ("oa", "an", "curl")}
    oa = record.tasks["oa"].attempts[0].spend
    assert (oa.calls, oa.input_tokens, oa.output_tokens) == (2, 200, 40)
    assert oa.cost_usd == pytest.approx((200 * 1.0 + 40 * 10.0) / 1e6)
    an = record.tasks["an"].spend
    assert (an.calls, an.input_tokens, an.output_tokens) == (2, 200, 40)
    assert an.cost_usd == pytest.approx((200 * 3.0 + 40 * 15.0) / 1e6)
    assert record.tasks["curl"].spend.calls == 1
    assert record.spend.calls == 5 and record.spend.input_tokens == 500
    assert record.spend.cost_usd == pytest.approx(oa.cost_usd + an.cost_usd + (100 + 200) / 1e6)
    # the upstream got the real key, the agents only their tokens; every call is in the trace
    sent = [{k.lower(): v for k, v in r["headers"].items()} for r in upstream.requests]
    assert len(sent) == 5 and all(h.get("authorization") == f"Bearer {OPENAI_KEY}"
                                  or h.get("x-api-key") == ANTHROPIC_KEY for h in sent)
    trace = read_trace(runs / "m1" / "tasks" / "oa" / "1" / "model.jsonl")
    assert [(e["endpoint"], e["stream"], e["outcome"]) for e in trace] == [("chat", False, "ok"),
                                                                          ("chat", True, "ok")]
    assert "hello from upstream" in git(repo, "show", "harness/m1/oa:answer.txt")
    assert "hello from upstream" in git(repo, "show", "harness/m1/curl:curl.json")

    # show: every call and step (their interleaving, which depends on when a step line
    # reaches the log, is checked with a held upstream in its own test); the run's totals
    shown = harness("show", "m1", "oa", "--repo", str(repo))
    assert shown.returncode == 0, shown.stderr
    lines = [ln.strip() for ln in shown.stdout.splitlines()]
    order = [ln for ln in lines if ln.startswith(("- ", "model #"))]
    calls = [o for o in order if o.startswith("model #")]
    assert [o for o in order if o.startswith("- ")] == ["- ask the model", "- ask again, streamed",
                                                        "- write the answer"], shown.stdout
    assert [c.split()[1] for c in calls] == ["#0", "#1"], shown.stdout
    assert "stream" in calls[1] and "200" in calls[0] and "100 in / 20 out" in calls[0]
    whole = harness("show", "m1", "--repo", str(repo))
    assert whole.returncode == 0, whole.stderr
    assert "total: 5 model call(s), 500 in / 100 out tokens" in whole.stdout, whole.stdout


def test_the_real_key_is_nowhere_the_agent_or_the_run_can_see(tmp_path, keys, upstream, agent):
    upstream.echo_secret = True  # a hostile upstream puts the key it got into its answers
    p = plan(tmp_path, "m2", upstreams(upstream.url) + f'''
[[task]]
id = "env"
command = "{agent} env openai"
''')
    proc, record, runs = run(tmp_path, p)
    assert proc.returncode == 0, proc.stderr
    log = Path(record.tasks["env"].attempts[0].log_path).read_text()
    seen = dict(line.split("=", 1) for line in log.splitlines() if "=" in line and not line.startswith(":"))
    assert seen["OPENAI_API_KEY"].startswith("hgw-") and seen["ANTHROPIC_API_KEY"] == seen["OPENAI_API_KEY"]
    assert seen["OPENAI_BASE_URL"].startswith("http://127.0.0.1:") and "HARNESS_MODEL_URL" in seen
    # the local sandbox passes the host's environment on: the key variables are blanked
    assert seen["MR_OPENAI_KEY"] == seen["MR_ANTHROPIC_KEY"] == ""
    files = [f for f in (runs / "m2").rglob("*") if f.is_file()]
    assert any(f.name == "model.jsonl" for f in files)
    for path in files:
        data = path.read_bytes()
        assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data, path
    assert OPENAI_KEY not in proc.stdout + proc.stderr


def test_a_budget_spent_ends_the_attempt_over_budget_with_the_numbers(tmp_path, keys, upstream, agent):
    p = plan(tmp_path, "m3", upstreams(upstream.url) + f'''
[model.budget.attempt]
tokens = 1000

[[task]]
id = "spender"
command = "{agent} loop openai"
retries = 2

[[task]]
id = "capped"
command = "{agent} loop anthropic"
[task.model.budget.attempt]
tokens = 200
''')
    proc, record, _ = run(tmp_path, p)
    assert proc.returncode == 1, proc.stderr
    spender = record.tasks["spender"]
    assert spender.status == TaskStatus.over_budget
    assert len(spender.attempts) == 1  # not retried: another attempt would spend more
    a = spender.attempts[0]
    assert a.status == TaskStatus.over_budget and a.spend.refused >= 1
    assert (a.spend.calls, a.spend.input_tokens, a.spend.output_tokens) == (9, 900, 180)
    assert "attempt token budget spent: 1080 of 1000 tokens" in a.reason, a.reason
    assert "9 call(s), 900 in / 180 out tokens" in a.reason
    capped = record.tasks["capped"].attempts[0]
    assert capped.status == TaskStatus.over_budget and capped.spend.calls == 2
    assert "of 200 tokens" in capped.reason
    assert record.spend.calls == 11


def test_a_dead_upstream_ends_its_attempts_unavailable_and_the_other_upstream_serves_on(
        tmp_path, keys, upstream, agent):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: connections are refused
    body = upstreams(upstream.url).replace(f'base_url = "{upstream.url}/v1"\napi_key_env = "MR_OPENAI_KEY"',
                                           f'base_url = "{dead}/v1"\napi_key_env = "MR_OPENAI_KEY"')
    body = body.replace("retries = 1\n", "retries = 1\nbreaker_failures = 2\nbreaker_cooldown_s = 0.2\n")
    assert dead in body
    p = plan(tmp_path, "m4", body + f'''
[[task]]
id = "dead"
command = "{agent} once openai"
retries = 1

[[task]]
id = "alive"
command = "{agent} once anthropic"
''', run_extra="backoff_s = 0.01")
    proc, record, runs = run(tmp_path, p)
    assert proc.returncode == 1, proc.stderr
    dead_r, alive = record.tasks["dead"], record.tasks["alive"]
    assert alive.status == TaskStatus.succeeded and alive.spend.calls == 2
    assert dead_r.status == TaskStatus.upstream_unavailable
    assert [a.status for a in dead_r.attempts] == [TaskStatus.upstream_unavailable] * 2  # retried after the cool-down
    reason = dead_r.attempts[0].reason
    assert "upstream 'oa' unavailable" in reason and "attempt spent 0 call(s)" in reason, reason
    trace = read_trace(runs / "m4" / "tasks" / "dead" / "1" / "model.jsonl")
    assert trace[0]["outcome"] == "upstream_unavailable" and len(trace[0]["tries"]) == 2  # retried once


def test_a_call_waiting_on_a_slow_upstream_is_not_a_stall(tmp_path, keys, upstream, agent):
    upstream.hold()
    p = plan(tmp_path, "m5", upstreams(upstream.url) + f'''
[[task]]
id = "patient"
command = "{agent} quiet openai"
stall_s = 0.5
''')
    repo = make_repo(tmp_path / "repo")
    import subprocess
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(p), "--repo", str(repo), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while upstream.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.calls == 1
        time.sleep(2.0)  # four stall windows of silence, the call held at the upstream
        upstream.release()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    record = RunRecord.model_validate_json(out)
    assert record.tasks["patient"].status == TaskStatus.succeeded


def test_silence_with_no_model_call_is_still_a_stall(tmp_path, keys, upstream):
    p = plan(tmp_path, "m6", upstreams(upstream.url) + '''
[[task]]
id = "mute"
command = "sleep 30"
stall_s = 0.3
''')
    proc, record, _ = run(tmp_path, p)
    assert proc.returncode == 1
    a = record.tasks["mute"].attempts[0]
    assert a.status == TaskStatus.stalled and "no model call" in a.reason
    assert a.spend.calls == 0


@pytest.mark.parametrize("case,body,expect", [
    ("key unset", "", "environment variable MR_UNSET_KEY is not set"),
    ("unknown upstream", '[task.model]\nmodel = "gemini-2"\n', "unknown upstream for model 'gemini-2'"),
    ("bad protocol", "", "model.upstream.0.protocol"),
    ("model without table", '[task.model]\nmodel = "gpt-4o"\n', "the plan has no [model] table"),
])
def test_bad_model_settings_are_one_line_and_exit_2_before_anything_is_made(tmp_path, keys, case, body, expect):
    table = upstreams("http://127.0.0.1:9")
    if case == "key unset":
        table = table.replace('"MR_OPENAI_KEY"', '"MR_UNSET_KEY"')
    elif case == "bad protocol":
        table = table.replace('protocol = "openai"', 'protocol = "gemini"')
    elif case == "model without table":
        table = ""
    p = plan(tmp_path, "bad", table + '[[task]]\nid = "a"\ncommand = "true"\n' + body)
    repo = make_repo(tmp_path / "repo")
    before = snapshot(repo)
    proc = harness("run", str(p), "--repo", str(repo))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert not (repo / ".git" / "harness" / "runs" / "bad").exists()
    assert before == snapshot(repo)
    assert "Traceback" not in proc.stderr and not os.environ.get("MR_UNSET_KEY")


class RouteSandbox:
    """The local sandbox with a model route of its own, recording what it is asked."""

    def __init__(self, config=None) -> None:
        from harness.sandbox.local import LocalSandbox

        self.inner = LocalSandbox(config)
        self.name, self.isolates = "local", False
        self.calls: list[tuple] = []
        self.requests = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def open_model_route(self, run_id):
        from harness.sandbox.base import ModelRoute

        self.calls.append(("open", run_id))
        return ModelRoute(bind_host="127.0.0.1", agent_host="localhost", network="net-test")

    def seal_model_route(self, run_id, port):
        self.calls.append(("seal", run_id, port))

    def close_model_route(self, run_id):
        self.calls.append(("close", run_id))

    def run(self, req):
        self.requests.append(req)
        return self.inner.run(req)


def _orchestrated(tmp_path, monkeypatch, upstream, body):
    from harness.run import scheduler
    from harness.run.lifecycle import prepare_run

    sandbox = RouteSandbox()
    monkeypatch.setattr(scheduler, "get_sandbox", lambda config: sandbox)
    p = plan(tmp_path, "rt", upstreams(upstream.url) + body)
    ws, store, resolved, record, _ = prepare_run(p, make_repo(tmp_path / "repo"))
    store.reserve()
    store.create(record)
    return scheduler.Orchestrator(ws, store, resolved, record), sandbox


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_gateway_lives_on_the_sandbox_route_for_the_run_and_no_longer(tmp_path, keys, upstream, monkeypatch):
    orch, sandbox = _orchestrated(tmp_path, monkeypatch, upstream, '''
[[task]]
id = "a"
command = """curl -sS -f "$OPENAI_BASE_URL/models" -H "Authorization: Bearer $OPENAI_API_KEY" > models.json"""
[task.model]
model = "gpt-4o"
''')
    with orch.store.writer("run"):
        record = orch.run()
    assert record.tasks["a"].status == TaskStatus.succeeded, record.tasks["a"].exit_reason
    (_, run_id), (_, _, port), (_, _) = sandbox.calls
    assert [c[0] for c in sandbox.calls] == ["open", "seal", "close"] and run_id == "rt"
    req = sandbox.requests[0]
    assert req.model_network == "net-test"
    assert req.env["HARNESS_MODEL_URL"] == f"http://localhost:{port}" and req.env["HARNESS_MODEL"] == "gpt-4o"
    assert req.env["OPENAI_BASE_URL"] == f"http://localhost:{port}/v1"
    assert not _listening(port)  # stopped with the run
    kinds = [e["kind"] for e in orch.store.events()]
    assert kinds.index("model_gateway_started") < kinds.index("attempt_started")
    assert kinds.index("model_gateway_stopped") < kinds.index("run_ended")


def test_a_run_that_crashes_stops_its_gateway_and_closes_its_route(tmp_path, keys, upstream, monkeypatch):
    orch, sandbox = _orchestrated(tmp_path, monkeypatch, upstream, '[[task]]\nid = "a"\ncommand = "true"\n')

    def broken(result):
        raise RuntimeError("the harness broke")

    monkeypatch.setattr(orch, "_finish", broken)
    with orch.store.writer("run"), pytest.raises(RuntimeError):
        orch.run()
    assert [c[0] for c in sandbox.calls] == ["open", "seal", "close"]
    assert not _listening(sandbox.calls[1][2])


def test_an_agent_that_ignores_refusals_is_stopped_by_the_verdict(tmp_path, keys, upstream, agent):
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(textwrap.dedent('''
        import json, os, time, urllib.error, urllib.request
        while True:  # calls on, refused or not
            req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
                data=json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode(),
                headers={"authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                         "content-type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=60).read()
            except urllib.error.HTTPError:
                time.sleep(0.05)
        '''))
    p = plan(tmp_path, "m7", upstreams(upstream.url) + f'''
[model.budget.task]
cost_usd = 0.0005

[[task]]
id = "stubborn"
command = "{sys.executable} {stubborn}"
timeout_s = 250
''')
    proc, record, _ = run(tmp_path, p)
    assert proc.returncode == 1, proc.stderr
    a = record.tasks["stubborn"].attempts[0]
    assert a.status == TaskStatus.over_budget and a.exit_code is None
    assert "task cost budget spent" in a.reason and a.spend.calls == 2, a.reason


def test_resume_starts_a_new_gateway_and_the_task_budget_counts_what_the_dead_run_spent(
        tmp_path, keys, upstream, agent):
    import subprocess

    p = plan(tmp_path, "m8", upstreams(upstream.url) + f'''
[model.budget.task]
tokens = 150

[[task]]
id = "a"
command = """if [ "$HARNESS_ATTEMPT" = 1 ]; then {agent} quiet openai && touch called && sleep 600; \\
else {agent} loop openai; fi"""
''')
    repo = make_repo(tmp_path / "repo")
    adir = repo / ".git" / "harness" / "runs" / "m8" / "tasks" / "a"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(p), "--repo", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a safety net, not a measurement
        while not ((repo / ".git/harness/worktrees/m8/a.1/called").exists()
                   and (adir / "1" / "model.jsonl").is_file()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    resumed = harness("resume", "m8", "--repo", str(repo), "--json")
    assert resumed.returncode == 1, resumed.stderr
    record = RunRecord.model_validate_json(resumed.stdout)
    first, second = record.tasks["a"].attempts
    assert first.status == TaskStatus.cancelled and first.spend.calls == 1  # read back from its recording
    assert second.status == TaskStatus.over_budget
    assert second.spend.calls == 1, second.reason  # 120 of 150 tokens were spent before the kill
    assert "task token budget spent: 240 of 150 tokens" in second.reason
    assert record.tasks["a"].spend.calls == 2 and record.spend.input_tokens == 200


def test_an_ended_attempts_token_is_refused_to_the_next_one(tmp_path, keys, upstream):
    kept = tmp_path / "kept-token"
    reuse = tmp_path / "reuse.py"
    reuse.write_text(textwrap.dedent(f'''
        import json, os, sys, urllib.error, urllib.request
        if os.environ["HARNESS_ATTEMPT"] == "1":
            open({str(kept)!r}, "w").write(os.environ["OPENAI_API_KEY"])  # smuggled out of its attempt
            sys.exit(1)
        old = open({str(kept)!r}).read()
        assert old != os.environ["OPENAI_API_KEY"]
        req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
            data=json.dumps({{"model": "gpt-4o", "messages": [{{"role": "user", "content": "hi"}}]}}).encode(),
            headers={{"authorization": "Bearer " + old, "content-type": "application/json"}})
        try:
            urllib.request.urlopen(req, timeout=60)
            sys.exit(5)
        except urllib.error.HTTPError as e:
            print(e.code, e.read().decode(), flush=True)
            sys.exit(0 if e.code == 401 else 6)
        '''))
    p = plan(tmp_path, "m9", upstreams(upstream.url) + f'''
[[task]]
id = "reuse"
command = "{sys.executable} {reuse}"
retries = 1
''', run_extra="backoff_s = 0.01")
    proc, record, _ = run(tmp_path, p)
    assert proc.returncode == 0, proc.stderr
    first, second = record.tasks["reuse"].attempts
    assert (first.status, second.status) == (TaskStatus.failed, TaskStatus.succeeded)
    assert "this token's attempt has ended" in Path(second.log_path).read_text()
    assert upstream.calls == 0 and second.spend.calls == 0


def test_show_lists_a_call_between_the_step_before_it_and_the_step_after(tmp_path, keys, upstream):
    """The upstream holds the call until the step announced before it is in the log,
    so the order shown does not depend on how fast the log is written."""
    import subprocess

    agent = tmp_path / "stepper.py"
    agent.write_text(textwrap.dedent('''
        import json, os, urllib.request
        print("::harness-step:: before the call", flush=True)
        req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
                                     data=json.dumps({"model": "gpt-4o", "messages": []}).encode(),
                                     headers={"content-type": "application/json",
                                              "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
        urllib.request.urlopen(req, timeout=120).read()
        print("::harness-step:: after the call", flush=True)
    '''))
    p = plan(tmp_path, "m9", upstreams(upstream.url) + f'''
[[task]]
id = "s"
command = "{sys.executable} {agent}"
''')
    repo = make_repo(tmp_path / "repo")
    upstream.hold()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(p), "--repo", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = repo / ".git" / "harness" / "runs" / "m9" / "tasks" / "s" / "1" / "output.log"
    try:
        for _ in range(2400):
            if upstream.in_flight == 1 and log.exists() and b"before the call" in log.read_bytes():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the agent never announced its step and called")
    finally:
        upstream.release()
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    shown = harness("show", "m9", "s", "--repo", str(repo)).stdout
    order = [ln.strip() for ln in shown.splitlines() if ln.strip().startswith(("- ", "model #"))]
    assert [o.split(" (")[0].split(" ->")[0] for o in order] == [
        "- before the call", "model #0 chat gpt-4o", "- after the call"], shown
