"""Tokens are the only way in, and the real keys never come out (hostile cases)."""

from __future__ import annotations

import json

import pytest
from gwutil import ANTHROPIC_KEY, ENV, OPENAI_KEY, auth, chat, messages, open_stream, post, read_event, upstream_entry

from harness.config import load_model_config
from harness.errors import PlanError, UsageError
from harness.gateway import Gateway


def _refused(status, headers, data, protocol="openai"):
    assert status == 401
    body = json.loads(data)
    err = body["error"]
    assert err["type"] == "authentication_error"
    if protocol == "anthropic":
        assert body["type"] == "error"
    assert headers["x-should-retry"] == "false"
    return err["message"]


def test_no_token_a_forged_one_and_a_revoked_one_are_refused(gateway, upstream):
    assert "no API key" in _refused(*post(gateway.url, "/v1/chat/completions", chat()))
    assert "unknown token" in _refused(*post(gateway.url, "/v1/chat/completions", chat(), auth("hgw-forged")))
    token = gateway.issue_token("r1", "t1", 1)
    assert post(gateway.url, "/v1/messages", messages(), auth(token, "anthropic"))[0] == 200
    gateway.revoke(token)
    assert "ended" in _refused(*post(gateway.url, "/v1/messages", messages(), auth(token, "anthropic")),
                               protocol="anthropic")
    assert upstream.calls == 1


def test_an_agent_cannot_send_its_own_credentials_or_billing_headers_upstream(gateway, upstream):
    token = gateway.issue_token("r1", "t1", 1)
    headers = {**auth(token), "x-api-key": "sk-agent-own", "OpenAI-Organization": "org-agent",
               "OpenAI-Project": "proj-agent", "Cookie": "a=b"}
    assert post(gateway.url, "/v1/chat/completions", chat(), headers)[0] == 200
    sent = {k.lower(): v for k, v in upstream.requests[-1]["headers"].items()}
    assert sent["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not {"x-api-key", "openai-organization", "openai-project", "cookie"} & set(sent)


def test_the_real_key_as_a_token_is_refused(gateway, upstream):
    _refused(*post(gateway.url, "/v1/chat/completions", chat(), auth(OPENAI_KEY)))
    assert upstream.calls == 0


def test_a_token_of_another_runs_gateway_is_refused(make_gateway, upstream, tmp_path):
    entries = [upstream_entry("oa", upstream.url)]
    mine = make_gateway(entries, run_id="r1")
    other = make_gateway(entries, run_id="r2", blobs_dir=tmp_path / "other-blobs")
    foreign = other.issue_token("r2", "t1", 1)
    _refused(*post(mine.url, "/v1/chat/completions", chat(), auth(foreign)))
    assert post(other.url, "/v1/chat/completions", chat(), auth(foreign))[0] == 200
    with pytest.raises(UsageError, match="r2"):
        mine.issue_token("r2", "t1", 1)


def test_an_upstream_echoing_its_key_leaks_it_nowhere(gateway, upstream, tmp_path):
    """A hostile upstream puts the key it received into every answer: the agent, the
    trace and the blobs see `[redacted]` instead."""
    upstream.echo_secret = True
    token = gateway.issue_token("r1", "t1", 1, trace_dir=tmp_path / "attempt")
    got = [post(gateway.url, "/v1/chat/completions", chat(), auth(token)),
           post(gateway.url, "/v1/chat/completions", chat(stream=True), auth(token)),
           post(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic")),
           post(gateway.url, "/v1/responses", {"model": "gpt-4o", "input": "x" * 5000}, auth(token))]
    gateway.flush()
    for status, headers, data in got:
        assert status == 200
        assert b"[redacted]" in data
        assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data
        assert OPENAI_KEY not in json.dumps(headers) and ANTHROPIC_KEY not in json.dumps(headers)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "model.jsonl" for p in files) and any("blobs" in p.parts for p in files)
    for p in files:
        data = p.read_bytes()
        assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data, p


def test_a_key_split_across_stream_pieces_is_still_removed():
    from harness.gateway.wire import StreamScrubber

    key = b"sk-secret-key-123"
    s = StreamScrubber([key])
    text = b"data: one sk-secret-key-123 two\n\n"
    out = b"".join(s.feed(text[i:i + 3]) for i in range(0, len(text), 3)) + s.end()
    assert out == b"data: one [redacted] two\n\n"
    assert StreamScrubber([key]).feed(b"ends with a newline sk-\n") == b"ends with a newline sk-\n"


def test_a_missing_key_variable_is_one_plan_error_before_anything_starts(upstream):
    cfg = load_model_config({"upstream": [upstream_entry("oa", upstream.url)]})
    with pytest.raises(PlanError, match=r"upstream 'oa': environment variable OPENAI_KEY is not set") as e:
        Gateway(cfg, "r1", environ={"ANTHROPIC_KEY": ANTHROPIC_KEY})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("upstreams,match", [
    ([{"name": "oa", "protocol": "grpc", "base_url": "http://x/v1", "api_key_env": "K", "models": ["m"]}],
     r"model\.upstream\.0\.protocol"),
    ([{"name": "oa", "protocol": "openai", "base_url": "x", "api_key_env": "K", "models": ["m"]}],
     "not an http"),
    ([{"name": "oa", "protocol": "openai", "base_url": "http://x/v1", "api_key_env": "K", "models": []}],
     "models"),
    ([{"name": "a", "protocol": "openai", "base_url": "http://x/v1", "api_key_env": "K", "models": ["m"]},
      {"name": "a", "protocol": "openai", "base_url": "http://y/v1", "api_key_env": "K", "models": ["n"]}],
     "two upstreams named 'a'"),
    ([{"name": "a", "protocol": "openai", "base_url": "http://x/v1", "api_key_env": "K", "models": ["m"],
       "max_concurency": 3}], "max_concurency"),
], ids=["protocol", "base-url", "no-models", "duplicate", "typo"])
def test_a_bad_model_table_is_one_line_naming_the_field(upstreams, match):
    with pytest.raises(PlanError, match=match) as e:
        load_model_config({"upstream": upstreams}, "plan.toml")
    assert str(e.value).startswith("plan.toml: model.") and "\n" not in str(e.value)


def test_an_unknown_upstream_name_is_a_plan_error(upstream):
    cfg = load_model_config({"upstream": [upstream_entry("oa", upstream.url)]})
    assert cfg.named("oa").protocol == "openai"
    with pytest.raises(PlanError, match=r"unknown upstream 'nope' \(known: oa\)"):
        cfg.named("nope")


def test_the_agent_env_carries_the_token_not_the_key(gateway):
    token = gateway.issue_token("r1", "t1", 1)
    env = gateway.agent_env(token, base_url="http://gateway:8080")
    assert env["OPENAI_BASE_URL"] == "http://gateway:8080/v1"
    assert env["ANTHROPIC_BASE_URL"] == env["HARNESS_MODEL_URL"] == "http://gateway:8080"
    assert env["OPENAI_API_KEY"] == env["ANTHROPIC_API_KEY"] == token
    assert not set(ENV.values()) & set(env.values())


def test_a_stream_read_with_a_revoked_token_mid_way_still_finishes(gateway, upstream):
    """Revoking ends the attempt's access for new calls; a stream already going ends normally."""
    token = gateway.issue_token("r1", "t1", 1)
    upstream.hold_streams()
    conn, resp = open_stream(gateway.url, "/v1/chat/completions", chat(stream=True), auth(token))
    assert read_event(resp)
    gateway.revoke(token)
    upstream.release()
    rest = []
    while ev := read_event(resp):
        rest.append(ev)
    conn.close()
    assert rest[-1] == [b"data: [DONE]"]
