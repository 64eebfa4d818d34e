"""Every exchange is one trace line; large parts are stored once; a replay serves the
recording back without an upstream and stops at the first call that differs."""

from __future__ import annotations

import json

import pytest
from gwutil import auth, chat, messages, post, upstream_entry

from harness.gateway import BlobStore, Gateway, expand, read_trace
from harness.gateway.recording import hoist, request_digest

SYSTEM = "You are a careful engineer. " * 200  # ~5.6 KB, sent by every agent


def _agent_body(i: int, stream: bool = False) -> dict:
    return {"model": "gpt-4o", "stream": stream,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"task {i}"}]}


def test_a_system_prompt_sent_by_many_attempts_is_stored_once(make_gateway, upstream, tmp_path):
    gw = make_gateway([upstream_entry("oa", upstream.url)], blobs_dir=tmp_path / "blobs")
    for i in range(12):
        token = gw.issue_token("r1", f"t{i}", 1, trace_dir=tmp_path / f"t{i}")
        assert post(gw.url, "/v1/chat/completions", _agent_body(i, stream=i % 2 == 1), auth(token))[0] == 200
    gw.flush()
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    holding = [p for p in blobs if b"careful engineer" in p.read_bytes()]
    assert len(holding) == 1
    store = BlobStore(tmp_path / "blobs")
    for i in range(12):
        [entry] = read_trace(tmp_path / f"t{i}" / "model.jsonl")
        assert entry["request"]["body"]["messages"][0] == {"$blob": holding[0].name}
        assert expand(entry["request"]["body"], store) == _agent_body(i, stream=i % 2 == 1)
        assert entry["request"]["digest"] == request_digest(json.dumps(_agent_body(i, i % 2 == 1)).encode())


def test_a_trace_line_says_what_happened(gateway, upstream, tmp_path):
    token = gateway.issue_token("r1", "t1", 3, trace_dir=tmp_path / "a")
    upstream.fail(429, retry_after="0")
    post(gateway.url, "/v1/messages?beta=true", messages(stream=True), auth(token, "anthropic"))
    _, _, plain = post(gateway.url, "/v1/chat/completions", chat(), auth(token))
    gateway.flush()
    first, second = read_trace(tmp_path / "a" / "model.jsonl")
    assert first["schema_version"] == 1
    assert (first["seq"], first["run"], first["task"], first["attempt"]) == (0, "r1", "t1", 3)
    assert (first["endpoint"], first["model"], first["stream"], first["upstream"]) == ("messages", "claude-x", True, "an")
    assert first["query"] == "beta=true"
    assert first["retry"] == 1 and [t["status"] for t in first["tries"]] == [429, 200]
    assert first["usage"] == {"input_tokens": 10, "output_tokens": 5}
    assert first["cost_usd"] == pytest.approx(60 / 1e6)
    assert first["outcome"] == "ok" and first["response"]["status"] == 200
    assert sum(first["response"]["chunks"]) == len(first["response"]["content"]["text"].encode())
    assert first["ttfb_s"] is not None and first["elapsed_s"] >= first["ttfb_s"]
    assert "x-api-key" not in {k.lower() for k in first["request"]["headers"]}
    assert second["seq"] == 1 and second["response"]["content"]["text"].encode() == plain


def test_hoist_keeps_a_body_that_looks_like_a_marker(tmp_path):
    store = BlobStore(tmp_path)
    body = {"a": {"$blob": "not ours"}, "b": ["x" * 2000, {"k": "y" * 3000}], "c": "short"}
    h = hoist(body, store)
    assert h["c"] == "short" and set(h["a"]) == {"$blob"} and set(h["b"][1]) == {"$blob"}
    assert expand(h, store) == body


def _record_session(gw, token):
    """A deterministic agent: three calls, one of them streamed."""
    outs = []
    for body, path, proto in [(_agent_body(1), "/v1/chat/completions", "openai"),
                              (messages(stream=True, content="step 2"), "/v1/messages", "anthropic"),
                              (chat(content="step 3"), "/v1/chat/completions", "openai")]:
        outs.append(post(gw.url, path, body, auth(token, proto)))
    return outs


def test_a_replay_serves_the_recording_without_upstream_or_key(make_gateway, upstream, tmp_path):
    gw = make_gateway([upstream_entry("oa", upstream.url), upstream_entry("an", upstream.url, protocol="anthropic")],
                      blobs_dir=tmp_path / "blobs")
    recorded = _record_session(gw, gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a"))
    gw.stop()
    upstream.stop()
    calls = upstream.calls

    with Gateway(None, "r1", blobs_dir=tmp_path / "blobs", replay=True, environ={}) as replay:
        token = replay.issue_token("r1", "t1", 1, replay_trace=tmp_path / "a" / "model.jsonl",
                                   trace_dir=tmp_path / "replayed")
        replayed = _record_session(replay, token)
        assert [(s, b) for s, _, b in replayed] == [(s, b) for s, _, b in recorded]
        assert replay.replay_position(token) == (3, 3)
        assert replay.spend("r1", "t1", 1).tokens == 45
        # One more call than recorded: stopped, and said where.
        status, _, data = post(replay.url, "/v1/chat/completions", chat(), auth(token))
        assert status == 409 and "the recording ends after 3 calls" in json.loads(data)["error"]["message"]
    assert upstream.calls == calls


def test_a_replay_stops_at_the_first_request_that_differs(make_gateway, upstream, tmp_path):
    gw = make_gateway([upstream_entry("oa", upstream.url), upstream_entry("an", upstream.url, protocol="anthropic")],
                      blobs_dir=tmp_path / "blobs")
    _record_session(gw, gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a"))
    gw.flush()
    with Gateway(None, "r1", blobs_dir=tmp_path / "blobs", replay=True) as replay:
        token = replay.issue_token("r1", "t1", 1, replay_trace=tmp_path / "a" / "model.jsonl")
        assert post(replay.url, "/v1/chat/completions", _agent_body(1), auth(token))[0] == 200
        changed = messages(stream=True, content="step two")
        status, _, data = post(replay.url, "/v1/messages", changed, auth(token, "anthropic"))
        assert status == 409
        body = json.loads(data)
        assert body["error"]["type"] == "replay_diverged"
        assert "call #1 (claude-x): $.messages[0].content" in body["error"]["message"]
        v = replay.verdict("r1", "t1", 1)
        assert v.status == "replay_diverged" and v.call == 1


def test_an_unwritable_trace_is_reported_and_calls_go_on(gateway, upstream, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    token = gateway.issue_token("r1", "t1", 1, trace_dir=blocked / "a")
    assert post(gateway.url, "/v1/chat/completions", chat(), auth(token))[0] == 200
    gateway.flush()
    assert len(gateway.recording_errors) == 1 and "file-not-dir" in gateway.recording_errors[0]
    ok = gateway.issue_token("r1", "t2", 1, trace_dir=tmp_path / "b")
    assert post(gateway.url, "/v1/chat/completions", chat(), auth(ok))[0] == 200
    gateway.flush()
    assert len(read_trace(tmp_path / "b" / "model.jsonl")) == 1


def test_the_turns_a_conversation_repeats_are_stored_once(gateway, upstream, tmp_path):
    """Call k resends the k-1 turns before it: storage grows with the turns, not their square."""
    token = gateway.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "w" * 2000}
             for i in range(6)]
    for k in range(1, 7):
        assert post(gateway.url, "/v1/chat/completions", {"model": "gpt-4o", "messages": turns[:k]},
                    auth(token))[0] == 200
    gateway.flush()
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 6
    trace = read_trace(tmp_path / "a" / "model.jsonl")
    store = BlobStore(tmp_path / "blobs")
    assert [expand(e["request"]["body"], store)["messages"] for e in trace] == [turns[:k] for k in range(1, 7)]


V1_LINE = {"schema_version": 1, "seq": 0, "run": "r1", "task": "t1", "attempt": 1, "endpoint": "chat",
           "method": "POST", "path": "/v1/chat/completions", "query": "", "model": "gpt-4o", "stream": False,
           "upstream": "oa", "started_at": "2026-11-28T17:00:00+00:00",
           "request": {"digest": "sha256:00", "headers": {}, "body": {"model": "gpt-4o", "messages": []}},
           "response": {"status": 200, "headers": {}, "content": {"text": "{}"}},
           "outcome": "ok", "error": None, "tries": [{"n": 0, "status": 200, "error": None, "elapsed_s": 0.1,
                                                      "wait_s": None}],
           "retry": 0, "queued_s": 0.0, "ttfb_s": 0.1, "elapsed_s": 0.1,
           "usage": {"input_tokens": 3, "output_tokens": 4}, "cost_usd": 0.0, "added_by_a_newer_writer": 1}


def test_a_version_1_trace_reads_as_typed_exchanges(tmp_path):
    from harness.errors import RecordError
    from harness.gateway import read_exchanges

    path = tmp_path / "model.jsonl"
    path.write_text(json.dumps(V1_LINE) + "\n" + '{"torn": ')
    [e] = read_exchanges(path)
    assert (e.seq, e.endpoint, e.usage, e.tries[0].status, e.response.status) == (0, "chat", {"input_tokens": 3,
                                                                                    "output_tokens": 4}, 200, 200)
    path.write_text(json.dumps({**V1_LINE, "schema_version": 99}) + "\n")
    with pytest.raises(RecordError, match="newer than this harness"):
        read_exchanges(path)


def test_what_the_gateway_writes_reads_back_typed(gateway, upstream, tmp_path):
    from harness.gateway import read_exchanges

    token = gateway.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    post(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic"))
    post(gateway.url, "/v1/chat/completions", b"not json", auth(token))
    gateway.flush()
    first, second = read_exchanges(tmp_path / "a" / "model.jsonl")
    assert first.outcome == "ok" and first.response.chunks and first.upstream == "an"
    assert second.outcome == "bad_request" and second.request.content == {"text": "not json"}
