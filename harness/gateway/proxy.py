"""The request path: authenticate, route by model, check budget and breaker, queue
fairly, forward with the real key, retry, relay (streams piece by piece), account,
record. Runs on the gateway's event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp
from aiohttp import web

from ..config import BudgetLimit, ModelConfig, UpstreamConfig
from .accounting import Ledger, Usage, UsageMeter
from .limits import Breaker, FairLimiter, backoff_s, retry_after_s
from .recording import Recorder, scrub
from .types import AttemptKey, Verdict
from .wire import DROP_REQUEST, DROP_RESPONSE, StreamScrubber, describe_error, error_response, filter_headers

ENDPOINTS = {"chat/completions": ("chat", "openai"), "responses": ("responses", "openai"),
             "messages": ("messages", "anthropic"), "messages/count_tokens": ("count_tokens", "anthropic")}
"""Path suffix -> (endpoint name, protocol that serves it)."""

_RETRYABLE = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass
class Grant:
    """What a token stands for."""

    key: AttemptKey
    trace: Path | None
    limits: dict[str, BudgetLimit]
    replay: Any = None
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq - 1


@dataclass
class UpstreamState:
    config: UpstreamConfig
    secret: str
    limiter: FairLimiter
    breaker: Breaker
    max_in_flight: int = 0


@dataclass
class Exchange:
    """One call as it goes; becomes the trace line."""

    grant: Grant
    endpoint: str
    protocol: str
    request: web.Request
    body: bytes
    parsed: Any
    seq: int
    t0: float = field(default_factory=time.perf_counter)
    entry: dict = field(default_factory=dict)
    response_body: bytes | None = None
    finished: bool = False


class Proxy:
    def __init__(self, config: ModelConfig, secrets: dict[str, str], ledger: Ledger,
                 recorder: Recorder | None, grants: dict[str, Grant], revoked: set[str],
                 on_verdict: Callable[[AttemptKey, Verdict], None] | None = None,
                 on_call: Callable[[AttemptKey, int, bool], None] | None = None) -> None:
        self.config = config
        self.on_call = on_call
        self.ledger = ledger
        self.recorder = recorder
        self.grants = grants
        self.revoked = revoked
        self.on_verdict = on_verdict
        self.verdicts: dict[AttemptKey, Verdict] = {}
        self.upstreams = {u.name: UpstreamState(u, secrets.get(u.name, ""), FairLimiter(u.max_concurrency),
                                                Breaker(u.breaker_failures, u.breaker_cooldown_s))
                          for u in (config.upstream if config is not None else [])}
        cap = config.max_concurrency if config is not None else None
        self.limiter = FairLimiter(cap) if cap is not None else None
        self._routes: dict[str, UpstreamConfig | None] = {}
        self._secrets = [s.encode() for s in secrets.values() if s]
        self.session: aiohttp.ClientSession | None = None
        self.replay = None  # set by the gateway in replay mode (a replay.Replayer)
        self._in_flight: dict[AttemptKey, int] = {}
        self._settled = threading.Condition()

    async def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def routes(self) -> list[web.RouteDef]:
        out = [web.get("/healthz", self.health)]
        for prefix in ("/v1", ""):
            out += [web.post(f"{prefix}/{suffix}", self.call) for suffix in ENDPOINTS]
            out.append(web.get(f"{prefix}/models", self.models))
        out.append(web.route("*", "/{tail:.*}", self.not_found))
        return out

    async def not_found(self, request: web.Request) -> web.Response:
        protocol = "anthropic" if "anthropic-version" in request.headers else "openai"
        return error_response(protocol, 404, "not_found_error",
                              f"harness gateway: no {request.method} {request.path} here (it serves "
                              f"/v1/chat/completions, /v1/responses, /v1/messages, /v1/models)")

    # --- small routes -------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def _grant(self, request: web.Request) -> tuple[Grant | None, str]:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "").strip()
        grant = self.grants.get(token) if token else None
        if grant is not None:
            return grant, ""
        if not token:
            return None, "no API key: send the attempt's token as a Bearer token or in x-api-key"
        if token in self.revoked:
            return None, "this token's attempt has ended"
        return None, "unknown token (not issued by this run's gateway)"

    async def models(self, request: web.Request) -> web.Response:
        protocol = "anthropic" if "anthropic-version" in request.headers else "openai"
        grant, why = self._grant(request)
        if grant is None:
            return error_response(protocol, 401, "authentication_error", why)
        data = [{"id": m, "object": "model", "type": "model", "display_name": m, "owned_by": u.name,
                 "created": 0, "created_at": "1970-01-01T00:00:00Z"}
                for u in (self.config.upstream if self.config is not None else [])
                for m in u.models if not any(c in m for c in "*?[")]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    # --- model calls --------------------------------------------------------------

    async def call(self, request: web.Request) -> web.StreamResponse:
        suffix = request.path.removeprefix("/v1/").lstrip("/")
        endpoint, protocol = ENDPOINTS[suffix]
        grant, why = self._grant(request)
        if grant is None:
            return error_response(protocol, 401, "authentication_error", why)
        body = await request.read()
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        x = Exchange(grant, endpoint, protocol, request, body, parsed if isinstance(parsed, dict) else None,
                     grant.next_seq())
        model = x.parsed.get("model") if x.parsed else None
        x.entry = {"seq": x.seq, "run": grant.key.run, "task": grant.key.task, "attempt": grant.key.attempt,
                   "endpoint": endpoint, "method": request.method, "path": request.path,
                   "query": request.query_string, "model": model if isinstance(model, str) else None,
                   "stream": bool(x.parsed and x.parsed.get("stream")), "upstream": None,
                   "started_at": datetime.now(timezone.utc).isoformat(),
                   "request": {"headers": filter_headers(request.headers, DROP_REQUEST)},
                   "response": None, "outcome": None, "error": None, "tries": [], "retry": 0,
                   "queued_s": 0.0, "ttfb_s": None, "elapsed_s": None,
                   "usage": None, "cost_usd": 0.0}
        self._notify(x, True)
        try:
            resp = await self._call(x, model)
        except asyncio.CancelledError:  # the client went away
            x.entry["outcome"] = x.entry["outcome"] or "client_gone"
            raise
        finally:
            self.finish(x)
            self._notify(x, False)
        return resp

    def _notify(self, x: Exchange, started: bool) -> None:
        key = x.grant.key
        with self._settled:
            self._in_flight[key] = self._in_flight.get(key, 0) + (1 if started else -1)
            if not self._in_flight[key]:
                del self._in_flight[key]
                self._settled.notify_all()
        if self.on_call is not None:
            try:
                self.on_call(x.grant.key, x.seq, started)
            except Exception:  # the harness's callback must not break the gateway
                pass

    def settle(self, key: AttemptKey, timeout: float) -> bool:
        """Wait (from outside the gateway's loop) until the attempt has no call in flight:
        an agent may be done with a call (it read the stream's last event) a moment
        before the gateway has counted and recorded it. False when `timeout` ran out."""
        with self._settled:
            return self._settled.wait_for(lambda: key not in self._in_flight, timeout)

    def finish(self, x: Exchange) -> None:
        """Hand the exchange to the recorder, once."""
        if x.finished:
            return
        x.finished = True
        x.entry["elapsed_s"] = round(time.perf_counter() - x.t0, 6)
        if self.recorder is not None and x.grant.trace is not None:
            self.recorder.record(x.grant.trace, x.entry, x.body, x.parsed, x.response_body)

    def refuse(self, x: Exchange, status: int, kind: str, message: str, outcome: str,
               verdict: str | None = None, upstream: str | None = None) -> web.Response:
        """Answer with the gateway's own error; with `verdict`, the attempt gets it too."""
        x.entry.update(outcome=outcome, error=message)
        if verdict is not None:
            self.ledger.add(x.grant.key, Usage(), 0.0, refused=True)
            self._verdict(x, verdict, message, upstream)
        resp = error_response(x.protocol, status, kind, message)
        x.entry["response"] = {"status": status, "headers": filter_headers(resp.headers, DROP_RESPONSE)}
        x.response_body = resp.body
        return resp

    async def _call(self, x: Exchange, model: Any) -> web.StreamResponse:
        if self.replay is not None:
            return await self.replay.serve(self, x)
        if x.parsed is None:
            return self.refuse(x, 400, "invalid_request_error", "the request body is not a JSON object",
                               "bad_request")
        if not isinstance(model, str) or not model:
            return self.refuse(x, 400, "invalid_request_error", "the request names no model", "bad_request")
        up_cfg = self._route(model)
        if up_cfg is None:
            known = ", ".join(m for u in self.config.upstream for m in u.models)
            return self.refuse(x, 404, "not_found_error", f"model {model!r} is not served here (served: {known})",
                               "bad_request")
        if up_cfg.protocol != x.protocol:
            return self.refuse(x, 400, "invalid_request_error",
                               f"model {model!r} is served over the {up_cfg.protocol} protocol, "
                               f"not at /{x.endpoint}", "bad_request")
        x.entry["upstream"] = up_cfg.name
        over = self.ledger.over(x.grant.key, x.grant.limits)
        if over is not None:
            return self.refuse(x, 402, "over_budget", f"harness gateway: {over}", "over_budget",
                               verdict="over_budget", upstream=up_cfg.name)
        return await self._forward(x, self.upstreams[up_cfg.name])

    async def _acquire(self, up: UpstreamState, owner: AttemptKey) -> None:
        """A slot at the upstream, then one of the run's (when it has a global cap);
        both queues take attempts in turn."""
        await up.limiter.acquire(owner)
        if self.limiter is not None:
            try:
                await self.limiter.acquire(owner)
            except BaseException:
                up.limiter.release()
                raise

    def _release(self, up: UpstreamState) -> None:
        if self.limiter is not None:
            self.limiter.release()
        up.limiter.release()

    def _route(self, model: str) -> UpstreamConfig | None:
        """`config.upstream_for`, remembered (glob matching on every call adds up)."""
        try:
            return self._routes[model]
        except KeyError:
            if len(self._routes) > 4096:  # model names come from agents: keep it bounded
                self._routes.clear()
            up = self._routes[model] = self.config.upstream_for(model)
            return up

    def _unavailable(self, x: Exchange, up: UpstreamState, why: str) -> web.Response:
        return self.refuse(x, 503, "upstream_unavailable",
                           f"harness gateway: upstream {up.config.name!r} unavailable: {why}",
                           "upstream_unavailable", verdict="upstream_unavailable", upstream=up.config.name)

    def _upstream_request(self, x: Exchange, up: UpstreamState) -> tuple[str, dict, bytes, aiohttp.ClientTimeout]:
        cfg = up.config
        url = f"{cfg.base_url}/{x.request.path.removeprefix('/v1/').lstrip('/')}"
        if x.request.query_string:
            url += "?" + x.request.query_string
        headers = filter_headers(x.request.headers, DROP_REQUEST)
        if cfg.protocol == "anthropic":
            headers["x-api-key"] = up.secret
        else:
            headers["Authorization"] = f"Bearer {up.secret}"
        body = x.body
        stream = x.entry["stream"]
        if stream and x.endpoint == "chat":
            opts = x.parsed.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                # Without it a chat stream carries no usage, and the budget could not count it.
                body = json.dumps({**x.parsed, "stream_options": {**(opts if isinstance(opts, dict) else {}),
                                                                  "include_usage": True}}).encode()
        if stream:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.timeout_s, sock_read=cfg.timeout_s)
        else:
            timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        return url, headers, body, timeout

    async def _forward(self, x: Exchange, up: UpstreamState) -> web.StreamResponse:
        cfg = up.config
        url, headers, body, timeout = self._upstream_request(x, up)
        tries = x.entry["tries"]
        for n in range(cfg.retries + 1):
            x.entry["retry"] = n
            if not up.breaker.allows():
                return self._unavailable(x, up, f"circuit open after {up.breaker.consecutive} failures in a row "
                                                f"(last: {up.breaker.last_error})")
            tq = time.perf_counter()
            await self._acquire(up, x.grant.key)
            x.entry["queued_s"] = round(x.entry["queued_s"] + time.perf_counter() - tq, 6)
            if not up.breaker.allows():
                self._release(up)
                return self._unavailable(x, up, f"circuit open after {up.breaker.consecutive} failures in a row "
                                                f"(last: {up.breaker.last_error})")
            up.max_in_flight = max(up.max_in_flight, up.limiter.in_flight)
            t_try = time.perf_counter()
            record = {"n": n, "status": None, "error": None, "elapsed_s": None, "wait_s": None}
            tries.append(record)
            try:
                try:
                    resp = await self.session.request(x.request.method, url, data=body, headers=headers,
                                                      timeout=timeout, allow_redirects=False)
                except _RETRYABLE as exc:
                    error = describe_error(exc)
                    up.breaker.failure(error)
                    record.update(error=error, elapsed_s=round(time.perf_counter() - t_try, 6))
                    retry_after = None
                    final = None
                else:
                    record["status"] = resp.status
                    if x.entry["ttfb_s"] is None:
                        x.entry["ttfb_s"] = round(time.perf_counter() - x.t0, 6)
                    is_sse = resp.content_type == "text/event-stream"
                    if resp.status < 500 and resp.status != 429:
                        if is_sse:
                            up.breaker.success()
                            return await self._relay_stream(x, up, resp)  # holds the slot to the end
                        try:
                            data = await resp.read()
                        except _RETRYABLE as exc:
                            error = describe_error(exc)
                            up.breaker.failure(error)
                            record.update(error=error, elapsed_s=round(time.perf_counter() - t_try, 6))
                            retry_after, final = None, None
                        else:
                            up.breaker.success()
                            record["elapsed_s"] = round(time.perf_counter() - t_try, 6)
                            return self._relay_body(x, up, resp, data)
                    else:
                        try:
                            data = await resp.read()
                        except _RETRYABLE:
                            data = b""
                        error = f"HTTP {resp.status}"
                        if resp.status >= 500:
                            up.breaker.failure(error)
                        record.update(error=error, elapsed_s=round(time.perf_counter() - t_try, 6))
                        retry_after = retry_after_s(resp.headers.get("retry-after"))
                        final = (resp, data)
                    resp.release()
            finally:
                self._release(up)
            if n < cfg.retries and up.breaker.allows():
                wait = backoff_s(n + 1, cfg.backoff_s, cfg.max_backoff_s, retry_after)
                record["wait_s"] = round(wait, 6)
                await asyncio.sleep(wait)
                continue
            break
        why = f"{len(tries)} tries failed (last: {record['error']})"
        if final is not None:
            # The upstream's own last answer says more than ours would.
            resp, data = final
            resp_out = self._relay_body(x, up, resp, data, account=False)
            x.entry["outcome"] = "upstream_unavailable"
            x.entry["error"] = why
            self._verdict(x, "upstream_unavailable",
                          f"harness gateway: upstream {up.config.name!r} unavailable: {why}", up.config.name)
            return resp_out
        return self._unavailable(x, up, why)

    def _verdict(self, x: Exchange, status: str, message: str, upstream: str | None) -> None:
        v = Verdict(status=status, message=message, call=x.seq, upstream=upstream,
                    spend=self.ledger.spend(*x.grant.key))
        self.verdicts[x.grant.key] = v
        if self.on_verdict is not None:
            try:
                self.on_verdict(x.grant.key, v)
            except Exception:  # the harness's callback must not break the gateway
                pass

    def _account(self, x: Exchange, up: UpstreamState, usage: Usage) -> None:
        cost = usage.cost(up.config)
        self.ledger.add(x.grant.key, usage, cost)
        x.entry["usage"] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        x.entry["cost_usd"] = cost
        v = self.verdicts.get(x.grant.key)
        if v is not None and v.status == "upstream_unavailable":
            del self.verdicts[x.grant.key]  # it got an answer after all

    def _relay_body(self, x: Exchange, up: UpstreamState, resp: aiohttp.ClientResponse, data: bytes,
                    account: bool = True) -> web.Response:
        data = scrub(data, self._secrets)
        headers = filter_headers(resp.headers, DROP_RESPONSE, self._secrets)
        if account:
            meter = UsageMeter()
            meter.body(data)
            self._account(x, up, meter.usage)
            x.entry["outcome"] = "ok" if resp.status < 400 else "upstream_error"
        x.entry["response"] = {"status": resp.status, "headers": headers}
        x.response_body = data
        return web.Response(status=resp.status, body=data, headers=headers)

    async def _relay_stream(self, x: Exchange, up: UpstreamState, resp: aiohttp.ClientResponse) -> web.StreamResponse:
        headers = filter_headers(resp.headers, DROP_RESPONSE, self._secrets)
        out = web.StreamResponse(status=resp.status, headers=headers)
        x.entry["response"] = {"status": resp.status, "headers": headers, "chunks": []}
        meter, scrubber, pieces = UsageMeter(), StreamScrubber(self._secrets), []
        accounted = False
        x.entry["outcome"] = "ok"
        try:
            await out.prepare(x.request)
            while True:
                try:
                    chunk = await resp.content.readany()
                except _RETRYABLE as exc:
                    # Mid-stream there is no retry: the agent already has part of the answer.
                    x.entry.update(outcome="upstream_error", error=f"stream broke: {describe_error(exc)}")
                    break
                if not chunk:
                    break
                meter.feed(chunk)
                piece = scrubber.feed(chunk)
                if piece:
                    pieces.append(piece)
                    await out.write(piece)
            tail = scrubber.end()
            if tail:
                pieces.append(tail)
                await out.write(tail)
            # Spend is counted before the agent sees the end, so it is there when the agent is done.
            self._account(x, up, meter.usage)
            accounted = True
            x.response_body = b"".join(pieces)
            x.entry["response"]["chunks"] = [len(p) for p in pieces]
            self.finish(x)  # in the trace by the time the agent has the whole answer
            await out.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            if not x.finished:
                x.entry.update(outcome="client_gone", error="the client closed the connection mid-stream")
        except asyncio.CancelledError:
            if not x.finished:
                x.entry.update(outcome="cancelled", error="the gateway stopped mid-stream")
            raise
        finally:
            resp.release()
            if not accounted:
                x.entry["response"]["chunks"] = [len(p) for p in pieces]
                x.response_body = b"".join(pieces)
                self._account(x, up, meter.usage)
        return out


