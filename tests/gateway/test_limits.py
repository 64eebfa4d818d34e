"""Concurrency caps with a fair queue, retries, the circuit breaker, timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gwutil import ENV, auth, chat, closed_port, messages, open_stream, post, read_event, upstream_entry

from harness.config import load_model_config
from harness.gateway import Gateway, GatewayError, read_trace
from harness.gateway.limits import Breaker, FairLimiter, backoff_s, retry_after_s


def _until(cond, what: str, limit_s: float = 20.0) -> None:
    """Poll for a state the test itself caused (not a timing assertion)."""
    end = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.005)


def test_twenty_callers_never_exceed_the_cap_at_the_upstream(make_gateway, upstream):
    gw = make_gateway([upstream_entry("oa", upstream.url, max_concurrency=4)])
    tokens = [gw.issue_token("r1", f"t{i}", 1) for i in range(20)]
    upstream.hold()
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(post, gw.url, "/v1/chat/completions", chat(), auth(t)) for t in tokens]
        _until(lambda: upstream.in_flight == 4 and gw.upstream_stats()["oa"]["waiting"] == 16,
               "4 calls at the upstream and 16 queued")
        assert upstream.max_in_flight == 4
        upstream.release()
        statuses = [f.result()[0] for f in futures]
    assert statuses == [200] * 20
    assert upstream.calls == 20 and upstream.max_in_flight == 4
    assert gw.upstream_stats()["oa"] == {"in_flight": 0, "waiting": 0, "max_in_flight": 4,
                                         "circuit_open": False, "consecutive_failures": 0}


def test_the_queue_takes_attempts_in_turn():
    """Attempt A queues 6 calls before B and C queue one each: B and C are served
    after A's first, not after all of A's."""

    async def scenario():
        lim = FairLimiter(1)
        order = []
        await lim.acquire("holder")

        async def call(owner, i):
            await lim.acquire(owner)
            order.append(f"{owner}{i}")
            await asyncio.sleep(0)
            lim.release()

        tasks = [asyncio.create_task(call("A", i)) for i in range(6)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(call("B", 0)), asyncio.create_task(call("C", 0))]
        await asyncio.sleep(0)
        lim.release()
        await asyncio.gather(*tasks)
        return order, lim.in_flight

    order, in_flight = asyncio.run(scenario())
    assert order[:4] == ["A0", "B0", "C0", "A1"]
    assert sorted(order) == ["A0", "A1", "A2", "A3", "A4", "A5", "B0", "C0"]
    assert in_flight == 0


def test_a_waiter_that_gives_up_leaves_no_slot_behind():
    async def scenario():
        lim = FairLimiter(1)
        await lim.acquire("a")
        waiter = asyncio.create_task(lim.acquire("b"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        lim.release()
        return lim.in_flight, lim.waiting

    assert asyncio.run(scenario()) == (0, 0)


def test_a_429_with_retry_after_then_success_is_retried(make_gateway, upstream, tmp_path):
    # A backoff of 3 s: the recorded wait shows Retry-After (0.05) was used instead.
    gw = make_gateway([upstream_entry("oa", upstream.url, backoff_s=3.0)])
    upstream.fail(429, retry_after="0.05")
    token = gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    status, _, data = post(gw.url, "/v1/chat/completions", chat(), auth(token))
    assert status == 200 and upstream.calls == 2
    gw.flush()
    [entry] = read_trace(tmp_path / "a" / "model.jsonl")
    assert [t["status"] for t in entry["tries"]] == [429, 200]
    assert entry["tries"][0]["wait_s"] == 0.05
    assert entry["retry"] == 1 and entry["outcome"] == "ok"
    assert gw.verdict("r1", "t1", 1) is None


def test_5xx_is_retried_and_the_last_answer_passed_on_when_every_try_fails(make_gateway, upstream):
    gw = make_gateway([upstream_entry("oa", upstream.url, retries=2, breaker_failures=10)])
    token = gw.issue_token("r1", "t1", 1)
    upstream.fail(502, n=1)
    assert post(gw.url, "/v1/chat/completions", chat(), auth(token))[0] == 200
    upstream.fail(500, n=3)
    status, _, data = post(gw.url, "/v1/chat/completions", chat(), auth(token))
    assert status == 500 and json.loads(data)["error"]["message"] == "scripted 500"
    assert upstream.calls == 5
    v = gw.verdict("r1", "t1", 1)
    assert v.status == "upstream_unavailable" and "3 tries failed" in v.message
    assert post(gw.url, "/v1/chat/completions", chat(), auth(token))[0] == 200
    assert gw.verdict("r1", "t1", 1) is None  # answered again


def test_a_dead_upstream_opens_its_circuit_and_another_upstream_keeps_working(make_gateway, upstream, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    gw = make_gateway([upstream_entry("dead", dead, retries=1, breaker_failures=2, breaker_cooldown_s=600),
                       upstream_entry("an", upstream.url, protocol="anthropic")])
    a = gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    b = gw.issue_token("r1", "t2", 1)
    verdicts = []
    gw.proxy.on_verdict = lambda key, v: verdicts.append((key, v.status))

    first = post(gw.url, "/v1/chat/completions", chat(), auth(a))
    assert first[0] == 503
    assert gw.upstream_stats()["dead"]["circuit_open"]
    statuses = [post(gw.url, "/v1/chat/completions", chat(), auth(a))[0] for _ in range(5)]
    assert statuses == [503] * 5
    status, _, data = post(gw.url, "/v1/messages", messages(), auth(b, "anthropic"))
    assert status == 200
    gw.flush()
    trace = read_trace(tmp_path / "a" / "model.jsonl")
    assert [len(e["tries"]) for e in trace] == [2, 0, 0, 0, 0, 0]  # then fail fast: no try at all
    assert all(e["outcome"] == "upstream_unavailable" for e in trace)
    assert "ClientConnectorError" in trace[0]["tries"][0]["error"]
    v = gw.verdict("r1", "t1", 1)
    assert v.status == "upstream_unavailable" and v.upstream == "dead" and "circuit open" in v.message
    assert gw.verdict("r1", "t2", 1) is None
    assert verdicts[0] == (("r1", "t1", 1), "upstream_unavailable")
    body = json.loads(post(gw.url, "/v1/chat/completions", chat(), auth(a))[2])
    assert body["error"]["type"] == "upstream_unavailable"


def test_a_hung_upstream_times_out(make_gateway, upstream):
    gw = make_gateway([upstream_entry("oa", upstream.url, timeout_s=0.2, retries=0)])
    token = gw.issue_token("r1", "t1", 1)
    upstream.hold()
    status, _, data = post(gw.url, "/v1/chat/completions", chat(), auth(token))
    upstream.release()
    assert status == 503
    assert "timed out" in json.loads(data)["error"]["message"]


def test_backoff_and_retry_after():
    assert retry_after_s("2") == 2.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert backoff_s(1, 1.0, 60, retry_after=7.0) == 7.0
    assert backoff_s(1, 1.0, 5, retry_after=70.0) == 5.0
    assert 4.0 <= backoff_s(3, 1.0, 60) <= 5.0


def test_a_run_wide_cap_holds_across_upstreams(upstream):
    cfg = load_model_config({"max_concurrency": 3,
                             "upstream": [upstream_entry("oa", upstream.url, max_concurrency=10),
                                          upstream_entry("an", upstream.url, protocol="anthropic",
                                                         max_concurrency=10)]})
    with Gateway(cfg, "r1", environ=ENV) as gw:
        upstream.hold()
        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(8):
                token = gw.issue_token("r1", f"t{i}", 1)
                path, body, proto = (("/v1/chat/completions", chat(), "openai") if i % 2 else
                                     ("/v1/messages", messages(), "anthropic"))
                futures.append(pool.submit(post, gw.url, path, body, auth(token, proto)))
            _until(lambda: upstream.in_flight == 3 and gw.proxy.limiter.waiting == 5, "3 in flight, 5 queued")
            upstream.release()
            assert [f.result()[0] for f in futures] == [200] * 8
    assert upstream.max_in_flight == 3


def test_the_breaker_lets_calls_through_after_its_cool_down():
    now = [0.0]
    b = Breaker(2, 30.0, clock=lambda: now[0])
    b.failure("x")
    assert b.allows()
    b.failure("x")
    assert not b.allows()
    now[0] = 29.9
    assert not b.allows()
    now[0] = 30.0
    assert b.allows()
    b.failure("again")  # still failing: open at once for another cool-down
    assert not b.allows()
    now[0] = 60.0
    b.success()
    assert b.allows() and b.consecutive == 0


def test_a_gateway_that_cannot_bind_says_so(make_gateway, upstream):
    first = make_gateway([upstream_entry("oa", upstream.url)])
    with pytest.raises(GatewayError, match="cannot listen on 127.0.0.1"):
        make_gateway([upstream_entry("oa", upstream.url)], port=first.port)


def test_a_stream_that_goes_silent_is_cut_at_the_timeout(make_gateway, upstream, tmp_path):
    gw = make_gateway([upstream_entry("oa", upstream.url, timeout_s=0.3, retries=0)])
    token = gw.issue_token("r1", "t1", 1, trace_dir=tmp_path / "a")
    upstream.hold_streams()
    conn, resp = open_stream(gw.url, "/v1/chat/completions", chat(stream=True), auth(token))
    events = []
    while ev := read_event(resp):
        events.append(ev)
    conn.close()
    upstream.release()
    assert len(events) == 1  # the first event, then the gateway ended the stream
    gw.flush()
    [entry] = read_trace(tmp_path / "a" / "model.jsonl")
    assert entry["outcome"] == "upstream_error" and "timed out" in entry["error"]
