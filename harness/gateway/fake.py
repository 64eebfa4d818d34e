"""A scripted model server: a real aiohttp server on loopback speaking OpenAI chat
completions and Responses and Anthropic Messages, plain and streamed, for tests and
benchmarks. It can answer 429 with Retry-After or 5xx, hold calls until released,
hold a stream after its first event, and counts what it sees (calls in flight,
the most ever in flight, every request's headers and body)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web

from .serving import BackgroundServer


def _sse(data: dict | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


class ScriptedUpstream(BackgroundServer):
    """Answers every model call with a short text reply and fixed usage.

    Script it between calls: `fail(status, n, retry_after, body)` makes the next n calls
    fail (with `body` as the JSON error when given); `script([...])` queues chat
    completion answers, returned in order before the default text (each a text, or a
    list of tool calls `{"name": ..., "arguments": dict or raw string}`); `hold()` / `release()` keep calls waiting before they answer; `hold_streams()`
    makes streams stop after their first event until `release()`; `echo_secret` puts
    the key it was sent into its answers (a hostile upstream)."""

    def __init__(self, input_tokens: int = 10, output_tokens: int = 5, text: str = "hello from upstream") -> None:
        super().__init__()
        self.input_tokens, self.output_tokens, self.text = input_tokens, output_tokens, text
        self.requests: list[dict] = []
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_sent = 0
        self.last_sent = 0
        self.echo_secret = False
        self._failures: list[tuple[int, str | None, dict | None]] = []
        self._script: list[str | list[dict]] = []
        self._held = threading.Event()
        self._held.set()
        self._hold_streams = False
        self._lock = threading.Lock()

    # --- script -------------------------------------------------------------------

    def fail(self, status: int = 429, n: int = 1, retry_after: str | None = None, body: dict | None = None) -> None:
        with self._lock:
            self._failures += [(status, retry_after, body)] * n

    def script(self, answers: list[str | list[dict]]) -> None:
        """Queue chat completion answers: a text, or a list of tool calls
        (`{"name": "bash", "arguments": {"command": "ls"}}`; a string as arguments is
        sent as is, so a test can send malformed JSON). A failure scripted with `fail`
        does not use one up."""
        with self._lock:
            self._script += list(answers)

    def hold(self) -> None:
        self._held.clear()

    def hold_streams(self) -> None:
        self._hold_streams = True
        self._held.clear()

    def release(self) -> None:
        self._hold_streams = False
        self._held.set()

    # --- lifecycle ----------------------------------------------------------------

    shutdown_timeout = 0.5

    def start(self) -> str:
        return self._serve("scripted-upstream")

    def stop(self) -> None:
        self.release()
        self._unserve()

    def make_app(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    # --- answers ------------------------------------------------------------------

    async def _wait_released(self) -> None:
        while not self._held.is_set():
            await asyncio.sleep(0.002)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith("/models"):
            return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append({"path": request.path, "query": request.query_string,
                                  "headers": dict(request.headers), "body": body})
            failure = self._failures.pop(0) if self._failures else None
            scripted = (self._script.pop(0) if self._script and failure is None
                        and request.path.endswith("/chat/completions") else None)
        try:
            if not self._hold_streams:
                await self._wait_released()
            if failure is not None:
                status, retry_after, error = failure
                headers = {"retry-after": retry_after} if retry_after is not None else {}
                return web.json_response(error or {"error": {"message": f"scripted {status}", "type": "scripted"}},
                                         status=status, headers=headers)
            secret = request.headers.get("authorization", "") + request.headers.get("x-api-key", "")
            text = self.text + (f" (you sent {secret})" if self.echo_secret else "")
            path = request.path
            if path.endswith("/chat/completions"):
                if isinstance(scripted, list):
                    return await self._chat_tools(request, body, scripted)
                return await self._chat(request, body, text if scripted is None else scripted)
            if path.endswith("/responses"):
                return await self._responses(request, body, text)
            if path.endswith("/messages/count_tokens"):
                return web.json_response({"input_tokens": self.input_tokens})
            if path.endswith("/messages"):
                return await self._messages(request, body, text)
            return web.json_response({"error": {"message": "no such route"}}, status=404)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        # Counted before the write, so an agent holding an event knows the count covers it.
        try:
            for i, ev in enumerate(events):
                if i == 0:
                    self.first_sent += 1
                if i == len(events) - 1:
                    self.last_sent += 1
                await resp.write(ev)
                if i == 0 and self._hold_streams:
                    await self._wait_released()
            await resp.write_eof()
        except ConnectionResetError:  # the caller hung up: nothing more to say
            pass
        return resp

    async def _chat(self, request, body, text):
        model, usage = body.get("model", "m"), {"prompt_tokens": self.input_tokens,
                                                 "completion_tokens": self.output_tokens,
                                                 "total_tokens": self.input_tokens + self.output_tokens}
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})
        half = len(text) // 2
        events = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        events += [_sse({**base, "choices": [{"index": 0, "delta": {"content": part}}]})
                   for part in (text[:half], text[half:])]
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(_sse("[DONE]"))
        return await self._stream(request, events)

    async def _chat_tools(self, request, body, calls: list[dict]):
        usage = {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                 "total_tokens": self.input_tokens + self.output_tokens}
        base = {"id": "chatcmpl-1", "created": int(time.time()), "model": body.get("model", "m")}
        tool_calls = [{"id": f"call_{self.calls}_{i}", "type": "function",
                       "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                                    else json.dumps(c["arguments"])}} for i, c in enumerate(calls)]
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "tool_calls",
                 "message": {"role": "assistant", "content": None, "tool_calls": tool_calls}}]})
        base["object"] = "chat.completion.chunk"
        events = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]})]
        for i, tc in enumerate(tool_calls):
            events.append(_sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "id": tc["id"], "type": "function",
                 "function": {"name": tc["function"]["name"], "arguments": ""}}]}}]}))
            events.append(_sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "function": {"arguments": tc["function"]["arguments"]}}]}}]}))
        events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_sse({**base, "choices": [], "usage": usage}))
        events.append(_sse("[DONE]"))
        return await self._stream(request, events)

    async def _responses(self, request, body, text):
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                 "total_tokens": self.input_tokens + self.output_tokens}
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        resp = {"id": "resp_1", "object": "response", "model": body.get("model", "m"), "status": "completed",
                "output": [item], "usage": usage}
        if not body.get("stream"):
            return web.json_response(resp)
        events = [_sse({"type": "response.created", "response": {**resp, "status": "in_progress",
                                                                  "output": [], "usage": None}},
                       "response.created"),
                  _sse({"type": "response.output_item.added", "output_index": 0,
                        "item": {**item, "status": "in_progress", "content": []}}, "response.output_item.added"),
                  _sse({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                        "item_id": "msg_1", "delta": text}, "response.output_text.delta"),
                  _sse({"type": "response.output_item.done", "output_index": 0, "item": item},
                       "response.output_item.done"),
                  _sse({"type": "response.completed", "response": resp}, "response.completed")]
        return await self._stream(request, events)

    async def _messages(self, request, body, text):
        msg = {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model", "m"),
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}}
        if not body.get("stream"):
            return web.json_response(msg)
        half = len(text) // 2
        events = [_sse({"type": "message_start", "message": {**msg, "content": [], "stop_reason": None,
                                                             "usage": {"input_tokens": self.input_tokens,
                                                                       "output_tokens": 1}}},
                       "message_start"),
                  _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                       "content_block_start")]
        events += [_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}},
                        "content_block_delta") for part in (text[:half], text[half:])]
        events += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                   _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"output_tokens": self.output_tokens}}, "message_delta"),
                   _sse({"type": "message_stop"}, "message_stop")]
        return await self._stream(request, events)
