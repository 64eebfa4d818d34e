"""The official OpenAI and Anthropic Python SDKs, pointed at the gateway with an
attempt's token, work as against the real services (skipped where not installed)."""

from __future__ import annotations

import pytest
from gwutil import upstream_entry

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


@pytest.fixture
def env(gateway):
    return gateway.agent_env(gateway.issue_token("r1", "t1", 1))


def test_openai_sdk_chat_plain_and_streamed(gateway, env):
    client = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=0)
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "hello from upstream" and r.usage.total_tokens == 15
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from upstream"
    assert chunks[-1].usage.completion_tokens == 5
    assert gateway.spend("r1", "t1", 1).calls == 2


def test_openai_sdk_responses_streamed(env):
    client = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=0)
    events = list(client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.output_tokens == 5


def test_anthropic_sdk_messages_plain_and_streamed(env):
    client = anthropic.Anthropic(base_url=env["ANTHROPIC_BASE_URL"], api_key=env["ANTHROPIC_API_KEY"],
                                 max_retries=0)
    msg = client.messages.create(model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "hello from upstream"
    with client.messages.stream(model="claude-x", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "hello from upstream" and final.usage.output_tokens == 5


def test_sdks_surface_the_gateways_refusals_without_retrying(make_gateway, upstream):
    gw = make_gateway([upstream_entry("oa", upstream.url), upstream_entry("an", upstream.url, protocol="anthropic")],
                      budget={"attempt": {"tokens": 1}})
    token = gw.issue_token("r1", "t1", 1)
    env = gw.agent_env(token)
    oa = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=5)
    oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError) as e:
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 402 and "attempt token budget spent" in str(e.value)
    an = anthropic.Anthropic(base_url=env["ANTHROPIC_BASE_URL"], api_key="hgw-forged", max_retries=5)
    with pytest.raises(anthropic.AuthenticationError):
        an.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert upstream.calls == 1  # neither SDK retried a refusal
    assert gw.spend("r1", "t1", 1).refused == 1
