"""Every protocol through the gateway, plain and streamed, against a real scripted
upstream: answers come back, the real key goes up, usage is counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from gwutil import ANTHROPIC_KEY, OPENAI_KEY, auth, chat, get, messages, post, responses

CASES = {
    "chat": ("/v1/chat/completions", chat, "openai"),
    "responses": ("/v1/responses", responses, "openai"),
    "messages": ("/v1/messages", messages, "anthropic"),
}


def _text_of(kind: str, stream: bool, body: bytes) -> str:
    if stream:
        datas = [json.loads(line[5:]) for line in body.split(b"\n")
                 if line.startswith(b"data:") and line[5:].strip() != b"[DONE]"]
        if kind == "chat":
            return "".join(c["delta"].get("content") or "" for d in datas for c in d["choices"])
        if kind == "responses":
            return "".join(d.get("delta", "") for d in datas if d["type"] == "response.output_text.delta")
        return "".join(d["delta"].get("text", "") for d in datas if d["type"] == "content_block_delta")
    data = json.loads(body)
    if kind == "chat":
        return data["choices"][0]["message"]["content"]
    if kind == "responses":
        return data["output"][0]["content"][0]["text"]
    return data["content"][0]["text"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", list(CASES))
def test_a_call_is_answered_with_the_real_key_sent_upstream(gateway, upstream, kind, stream):
    path, body, protocol = CASES[kind]
    token = gateway.issue_token("r1", "t1", 1)
    status, headers, data = post(gateway.url, path, body(stream=stream), auth(token, protocol))
    assert status == 200, data
    assert _text_of(kind, stream, data) == "hello from upstream"
    assert headers["Content-Type"].startswith("text/event-stream" if stream else "application/json")
    sent = {k.lower(): v for k, v in upstream.requests[-1]["headers"].items()}
    if protocol == "openai":
        assert sent["authorization"] == f"Bearer {OPENAI_KEY}"
        assert "x-api-key" not in sent
    else:
        assert sent["x-api-key"] == ANTHROPIC_KEY
        assert sent["anthropic-version"] == "2023-06-01"
        assert "authorization" not in sent
    assert token not in json.dumps(sent)
    spend = gateway.spend("r1", "t1", 1)
    assert (spend.calls, spend.input_tokens, spend.output_tokens) == (1, 10, 5)
    assert spend.cost_usd == pytest.approx((10 * 1.0 + 5 * 10.0) / 1e6)


def test_a_chat_stream_asks_upstream_for_usage_and_keeps_the_clients_options(gateway, upstream):
    token = gateway.issue_token("r1", "t1", 1)
    post(gateway.url, "/v1/chat/completions", chat(stream=True, stream_options={"foo": 1}), auth(token))
    assert upstream.requests[-1]["body"]["stream_options"] == {"foo": 1, "include_usage": True}
    assert gateway.spend("r1").tokens == 15


def test_spend_adds_up_per_attempt_task_and_run(gateway):
    for task, attempt in [("t1", 1), ("t1", 2), ("t2", 1)]:
        token = gateway.issue_token("r1", task, attempt)
        assert post(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic"))[0] == 200
    assert gateway.spend("r1", "t1", 2).tokens == 15
    assert gateway.spend("r1", "t1").tokens == 30
    assert gateway.spend("r1").tokens == 45
    assert gateway.spend("r1", "t9").calls == 0


def test_the_query_string_and_paths_without_v1_are_forwarded(gateway, upstream):
    token = gateway.issue_token("r1", "t1", 1)
    assert post(gateway.url, "/v1/messages?beta=true", messages(), auth(token, "anthropic"))[0] == 200
    assert upstream.requests[-1]["query"] == "beta=true"
    assert post(gateway.url, "/chat/completions", chat(), auth(token))[0] == 200
    assert upstream.requests[-1]["path"] == "/v1/chat/completions"


def test_anthropic_count_tokens_is_forwarded_and_other_paths_get_a_json_404(gateway, upstream):
    token = gateway.issue_token("r1", "t1", 1)
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
    assert post(gateway.url, "/v1/messages/count_tokens?beta=true", body, auth(token, "anthropic"))[0] == 200
    assert upstream.requests[-1]["path"] == "/v1/messages/count_tokens"
    status, _, data = post(gateway.url, "/v1/embeddings", {"model": "gpt-4o"}, auth(token))
    assert status == 404 and "/v1/embeddings" in json.loads(data)["error"]["message"]


def test_models_lists_what_the_plan_serves(make_gateway, upstream):
    from gwutil import upstream_entry

    gw = make_gateway([upstream_entry("oa", upstream.url, models=["gpt-4o", "o3-*"]),
                       upstream_entry("an", upstream.url, protocol="anthropic", models=["claude-x"])])
    token = gw.issue_token("r1", "t1", 1)
    status, data = get(gw.url, "/v1/models", auth(token))
    assert status == 200
    assert [m["id"] for m in json.loads(data)["data"]] == ["gpt-4o", "claude-x"]
    assert get(gw.url, "/v1/models")[0] == 401
    assert get(gw.url, "/healthz")[0] == 200


@pytest.mark.parametrize("body,status,kind", [
    (chat(model="llama-3"), 404, "not_found_error"),
    (chat(model="claude-x"), 400, "invalid_request_error"),  # an Anthropic model at /chat/completions
    ({"messages": []}, 400, "invalid_request_error"),
    (b"not json", 400, "invalid_request_error"),
], ids=["unknown-model", "wrong-protocol", "no-model", "not-json"])
def test_a_call_that_cannot_be_routed_gets_a_json_error(gateway, upstream, body, status, kind):
    token = gateway.issue_token("r1", "t1", 1)
    got, headers, data = post(gateway.url, "/v1/chat/completions", body, auth(token))
    assert got == status
    assert json.loads(data)["error"]["type"] == kind
    assert headers["x-should-retry"] == "false"
    assert upstream.calls == 0


def test_importing_the_package_does_not_import_aiohttp():
    code = "import sys, harness.gateway, harness.config; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
