"""A real run with the docker sandbox and a [model] table, through the CLI: the
agents reach their model only through the run's gateway, on the run's fenced
network; the rest of the host stays shut, and the route is gone when the run ends."""

from __future__ import annotations

import http.server
import json
import textwrap
import threading

from gitutil import git, harness, make_repo, write_plan
from harness.gateway import ScriptedUpstream, read_trace
from harness.records import RunRecord

KEY = "sk-docker-modelrun-0123456789abcdef"

AGENT = textwrap.dedent('''
    import json, os, socket, sys, urllib.request
    base = os.environ["OPENAI_BASE_URL"]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    req = urllib.request.Request(base + "/chat/completions", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json",
                                          "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
    with urllib.request.urlopen(req, timeout=60) as r:
        answer = json.loads(r.read())
    host = base.split("//")[1].split(":")[0]
    reached = []
    for port in map(int, sys.argv[1:]):  # another port of the host, where the gateway listens
        try:
            socket.create_connection((host, port), timeout=2).close()
            reached.append(port)
        except OSError:
            pass
    open("answer.txt", "w").write(json.dumps({"answer": answer["choices"][0]["message"]["content"],
                                              "reached": reached, "key_seen": any("sk-docker-modelrun" in v for v in os.environ.values())}))
''')


def test_a_docker_run_reaches_its_model_and_nothing_else(tmp_path, docker_daemon, run_id, monkeypatch):
    monkeypatch.setenv("DM_OPENAI_KEY", KEY)
    repo = make_repo(tmp_path / "repo", {"agent.py": AGENT, "README.md": "target\n"})
    # a listener on every address of the host: only the gateway's port may be reached
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    other = server.server_address[1]
    try:
        with ScriptedUpstream(input_tokens=50, output_tokens=5) as up:
            plan = write_plan(tmp_path / "plan.toml", f'''
                [run]
                sandbox = "docker"
                id = "{run_id}"

                [[model.upstream]]
                name = "oa"
                protocol = "openai"
                base_url = "{up.url}/v1"
                api_key_env = "DM_OPENAI_KEY"
                models = ["gpt-*"]
                input_price_per_mtok = 1.0
                output_price_per_mtok = 10.0

                [[task]]
                id = "ask"
                command = "python3 agent.py {other}"
                ''')
            proc = harness("run", str(plan), "--repo", str(repo), "--json")
        assert proc.returncode == 0, proc.stderr
    finally:
        server.shutdown()
    record = RunRecord.model_validate_json(proc.stdout)
    result = json.loads(git(repo, "show", f"harness/{run_id}/ask:answer.txt"))
    assert result["answer"] and result["reached"] == [] and not result["key_seen"]
    assert record.tasks["ask"].spend.calls == 1 and record.spend.input_tokens == 50
    attempt_dir = repo / ".git" / "harness" / "runs" / run_id / "tasks" / "ask" / "1"
    [call] = read_trace(attempt_dir / "model.jsonl")
    assert call["response"]["status"] == 200 and call["upstream"] == "oa"
    for path in (repo / ".git" / "harness" / "runs" / run_id).rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path
    # the run's route is gone with the run
    assert not docker_daemon.networks.list(filters={"label": f"harness.run={run_id}"})
