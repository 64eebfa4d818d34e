"""Past a budget the gateway refuses with the numbers, and says so to the harness."""

from __future__ import annotations

import json

import pytest
from gwutil import auth, chat, messages, post, upstream_entry

from harness.config import BudgetLimit, ModelBudgets


def test_an_attempt_past_its_token_budget_is_refused_with_what_it_spent(make_gateway, upstream, tmp_path):
    gw = make_gateway([upstream_entry("oa", upstream.url)], budget={"attempt": {"tokens": 20}})
    token = gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    assert post(gw.url, "/v1/chat/completions", chat(), auth(token))[0] == 200        # 15 tokens
    assert post(gw.url, "/v1/chat/completions", chat(stream=True), auth(token))[0] == 200  # 30: over now
    status, headers, data = post(gw.url, "/v1/chat/completions", chat(), auth(token))
    assert status == 402 and headers["x-should-retry"] == "false"
    err = json.loads(data)["error"]
    assert err["type"] == "over_budget"
    assert "attempt token budget spent: 30 of 20 tokens (20 in, 10 out" in err["message"]
    assert upstream.calls == 2
    v = gw.verdict("r1", "t1", 1)
    assert v.status == "over_budget" and v.call == 2
    assert (v.spend.input_tokens, v.spend.output_tokens, v.spend.calls, v.spend.refused) == (20, 10, 2, 1)
    assert v.spend.cost_usd == pytest.approx((20 * 1 + 10 * 10) / 1e6)
    # Another attempt of another task has its own budget.
    other = gw.issue_token("r1", "t2", 1)
    assert post(gw.url, "/v1/chat/completions", chat(), auth(other))[0] == 200


def test_a_task_budget_spans_its_attempts(make_gateway, upstream):
    gw = make_gateway([upstream_entry("an", upstream.url, protocol="anthropic")], budget={"task": {"tokens": 15}})
    first = gw.issue_token("r1", "t1", 1)
    assert post(gw.url, "/v1/messages", messages(stream=True), auth(first, "anthropic"))[0] == 200
    second = gw.issue_token("r1", "t1", 2)
    status, _, data = post(gw.url, "/v1/messages", messages(), auth(second, "anthropic"))
    assert status == 402
    body = json.loads(data)
    assert body["type"] == "error" and body["error"]["type"] == "over_budget"
    assert "task token budget spent: 15 of 15" in body["error"]["message"]
    assert gw.verdict("r1", "t1", 2).status == "over_budget"


def test_a_run_cost_budget_stops_every_task(make_gateway, upstream):
    # Each call costs 10 * 1 + 5 * 10 = 60 micro-dollars.
    gw = make_gateway([upstream_entry("oa", upstream.url)], budget={"run": {"cost_usd": 0.0001}})
    tokens = [gw.issue_token("r1", f"t{i}", 1) for i in range(3)]
    assert [post(gw.url, "/v1/responses", {"model": "gpt-4o", "input": "x"}, auth(t))[0]
            for t in tokens] == [200, 200, 402]
    msg = gw.verdict("r1", "t2", 1).message
    assert "run cost budget spent: $0.0001 of $0.0001 (30 tokens, 2 calls)" in msg


def test_a_budget_given_with_the_token_replaces_the_plans(make_gateway, upstream):
    gw = make_gateway([upstream_entry("oa", upstream.url)], budget={"attempt": {"tokens": 1000}})
    token = gw.issue_token("r1", "t1", 1, budget=ModelBudgets(attempt=BudgetLimit(tokens=10)))
    assert post(gw.url, "/v1/chat/completions", chat(), auth(token))[0] == 200
    assert post(gw.url, "/v1/chat/completions", chat(), auth(token))[0] == 402


def test_usage_from_every_stream_kind_counts(gateway, upstream):
    """Anthropic reports output in message_delta, Responses in response.completed, chat in
    its last chunk (asked for by the gateway)."""
    token = gateway.issue_token("r1", "t1", 1)
    upstream.output_tokens = 7
    post(gateway.url, "/v1/messages", messages(stream=True), auth(token, "anthropic"))
    post(gateway.url, "/v1/responses", {"model": "gpt-4o", "input": "x", "stream": True}, auth(token))
    post(gateway.url, "/v1/chat/completions", chat(stream=True), auth(token))
    s = gateway.spend("r1", "t1", 1)
    assert (s.calls, s.input_tokens, s.output_tokens) == (3, 30, 21)
