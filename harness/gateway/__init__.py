"""The per-run model gateway: the one door between sandboxed agents and their model.

A `Gateway` is a reverse proxy (aiohttp) on a thread and event loop of its own. Agents
call it with the OpenAI (`/v1/chat/completions`, `/v1/responses`) or Anthropic
(`/v1/messages`) API, plain or streamed, using a per-attempt token as their API key
(`Authorization: Bearer` or `x-api-key`); `GET /v1/models` lists the models served.
The gateway routes each call by its `model` to an upstream of the plan's [model] table,
injects that upstream's real key (read from the host's environment; it never appears
in an answer, an error or a recording), queues calls fairly under the upstream's
concurrency cap, retries 429/5xx/connection errors with backoff (Retry-After
honoured), opens a circuit on an upstream that keeps failing, counts tokens and cost
(streams included) per attempt, task and run, refuses calls past a budget, and
records every exchange.

How a run uses it::

    gw = Gateway(plan.model, run_id, blobs_dir=run_dir / "model-blobs")  # PlanError: key unset
    url = gw.start()
    token = gw.issue_token(run_id, task_id, attempt, trace_dir=attempt_dir)
    sandbox_env.update(gw.agent_env(token, base_url=url_as_the_sandbox_sees_it))
    ...                                       # the agent runs
    gw.revoke(token)
    verdict = gw.verdict(run_id, task_id, attempt)   # over_budget / upstream_unavailable / None
    spend = gw.spend(run_id, task_id, attempt)       # Spend(calls, input_tokens, output_tokens, cost_usd)
    gw.stop()

Limits: each upstream has `max_concurrency` calls in flight at most, and the run
`[model] max_concurrency` across upstreams; callers past a cap wait in a queue that
takes attempts in turn. A budget is checked before each call: once an attempt's (or
its task's, or the run's) spend has reached a limit, further calls are refused; calls
already in flight finish, so spend can pass a limit by what those calls used.

Refusals are JSON in the protocol's error shape, with `x-should-retry: false` and
`x-harness-gateway: <kind>`: 401 authentication_error (no token, forged, revoked, or
another run's), 402 over_budget (the message names the budget and the spend), 503
upstream_unavailable (circuit open, or every try failed: then the upstream's last
answer is passed through when it gave one), 404 for a model no upstream serves.

Recording format (schema_version 1). Each exchange is one JSON line appended, when it
ends, to the attempt's `<trace_dir>/model.jsonl`; lines may be out of call order when
an agent makes calls in parallel, so readers sort by `seq` (`read_trace` gives dicts,
`read_exchanges` typed `ModelExchange` records)::

    {"schema_version": 1, "seq": 0, "run": "r", "task": "t", "attempt": 1,
     "endpoint": "chat" | "responses" | "messages", "method": "POST",
     "path": "/v1/chat/completions", "query": "", "model": "gpt-x", "stream": true,
     "upstream": "openai",
     "started_at": "<iso time>", "queued_s": 0.0, "ttfb_s": 0.01, "elapsed_s": 0.2,
     "request": {"digest": "sha256:<hex>", "headers": {...}, "body": <JSON, hoisted>},
     "response": {"status": 200, "headers": {...}, "content": {"text": "..."}
                  | {"blob": "<hex>", "size": n}, "chunks": [n1, n2, ...]},
     "outcome": "ok" | "upstream_error" | "upstream_unavailable" | "over_budget"
                | "bad_request" | "client_gone" | "replay_diverged" | "replayed",
     "error": null | "one line", "retry": 0,
     "tries": [{"n": 0, "status": 429, "error": "HTTP 429", "elapsed_s": 0.01, "wait_s": 1.0}, ...],
     "usage": {"input_tokens": 10, "output_tokens": 5}, "cost_usd": 0.0001}

- `request.digest` is the sha256 of the request body's canonical JSON (keys sorted,
  no spaces) as the agent sent it; replay matches call `seq` by it.
- `request.body` is the JSON body with every large part (a string of 1 KiB or more,
  or an object or array of 1 KiB or more inside an array: a message, a tool) replaced
  by `{"$blob": "<sha256 hex>"}`; the blob holds that part's canonical JSON
  (`expand` puts it back). So a system prompt 300 agents send is stored once, and the
  earlier turns each request repeats are stored once. A body that is not JSON is
  kept as `request.content` instead.
- `response.content` holds the bytes the agent received (after scrubbing): inline as
  text under 1 KiB, else a blob. A stream's bytes are one blob; `chunks` are the sizes
  of the pieces as they were relayed, so a replay can send them the same way.
- Blobs live in the run's shared `blobs_dir` as `<hex[:2]>/<hex>`.
- The gateway's own refusals are recorded too, with `tries: []` when no upstream
  was called (a call failed fast on an open circuit, or was over budget).

Replay: `Gateway(None, run_id, blobs_dir=..., replay=True)` and
`issue_token(..., replay_trace=<attempt dir>/model.jsonl)` serves that attempt's
recorded answers in order; the first call whose endpoint or digest differs gets 409
and a `replay_diverged` verdict naming the call and the first differing JSON path.

`fake.ScriptedUpstream` is a scripted model server for tests and benchmarks.
"""

from __future__ import annotations

from .types import AttemptKey, GatewayError, ModelExchange, Spend, Verdict

__all__ = ["AttemptKey", "Gateway", "GatewayError", "ModelExchange", "Spend", "Verdict", "ScriptedUpstream",
           "read_trace", "read_exchanges", "expand", "load_content", "BlobStore"]


def __getattr__(name: str):
    # aiohttp is imported only by whoever uses the gateway, not by `import harness.gateway`.
    if name == "Gateway":
        from .server import Gateway
        return Gateway
    if name == "ScriptedUpstream":
        from .fake import ScriptedUpstream
        return ScriptedUpstream
    if name in ("read_trace", "read_exchanges", "expand", "load_content", "BlobStore"):
        from . import recording
        return getattr(recording, name)
    raise AttributeError(name)
