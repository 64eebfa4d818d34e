"""Streams pass through piece by piece: the agent has the first event while the
upstream has not yet been allowed to send the last."""

from __future__ import annotations

import json

import pytest
from gwutil import auth, chat, messages, open_stream, read_event, responses

KINDS = {
    "chat": ("/v1/chat/completions", chat, "openai", b"data: [DONE]"),
    "responses": ("/v1/responses", responses, "openai", b"event: response.completed"),
    "messages": ("/v1/messages", messages, "anthropic", b"event: message_stop"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_first_event_arrives_before_the_upstream_sends_the_last(gateway, upstream, kind):
    path, body, protocol, last = KINDS[kind]
    token = gateway.issue_token("r1", "t1", 1)
    upstream.hold_streams()
    conn, resp = open_stream(gateway.url, path, body(stream=True), auth(token, protocol))
    try:
        first = read_event(resp)
        # The upstream is still holding its stream after the first event.
        assert upstream.first_sent == 1 and upstream.last_sent == 0
        assert first and first[-1].startswith(b"data:")
        upstream.release()
        events = [first]
        while ev := read_event(resp):
            events.append(ev)
    finally:
        conn.close()
    assert upstream.last_sent == 1
    assert events[-1][0] == last
    assert len(events) >= 5


def test_an_agent_that_hangs_up_mid_stream_frees_its_slot(gateway, upstream, tmp_path):
    from harness.gateway import read_trace

    token = gateway.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    upstream.hold_streams()
    conn, resp = open_stream(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic"))
    assert read_event(resp)
    assert gateway.upstream_stats()["an"]["in_flight"] == 1
    conn.close()
    resp.close()
    upstream.release()
    import time

    end = time.monotonic() + 20
    while gateway.upstream_stats()["an"]["in_flight"]:
        assert time.monotonic() < end
        time.sleep(0.005)
    gateway.flush()
    [entry] = read_trace(tmp_path / "a" / "model.jsonl")
    assert entry["outcome"] in ("client_gone", "ok")  # ok: the rest fitted in the socket buffers
    # Whatever the agent got is counted: message_start carried the input tokens.
    assert gateway.spend("r1", "t1", 1).input_tokens == 10
    assert json.loads(json.dumps(entry))["response"]["status"] == 200


def test_stopping_the_gateway_ends_open_streams_and_records_them(gateway, upstream, tmp_path):
    from harness.gateway import read_trace

    token = gateway.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    upstream.hold_streams()
    conn, resp = open_stream(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic"))
    assert read_event(resp)
    gateway.stop()
    assert read_event(resp) == []  # the agent sees its stream end, not a hang
    conn.close()
    [entry] = read_trace(tmp_path / "a" / "model.jsonl")
    assert entry["outcome"] == "cancelled"
    assert gateway.spend("r1", "t1", 1).input_tokens == 10
