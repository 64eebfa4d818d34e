"""HTTP details of the gateway: which headers cross, the gateway's own error bodies,
and secrets removed from a stream cut in arbitrary pieces."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .recording import scrub

# Never forwarded either way: hop-by-hop, framing (aiohttp redoes it), the agent's token,
# and headers that would let an agent pick the account the harness's key bills.
DROP_REQUEST = {"host", "authorization", "x-api-key", "content-length", "connection", "keep-alive",
                "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
                "accept-encoding", "cookie", "openai-organization", "openai-project"}
DROP_RESPONSE = {"content-length", "content-encoding", "transfer-encoding", "connection",
                 "keep-alive", "set-cookie", "server", "date", "trailer", "upgrade"}


def error_response(protocol: str, status: int, kind: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The gateway's own refusal in the protocol's error shape; `x-should-retry: false`
    tells the OpenAI and Anthropic SDKs not to retry it."""
    if protocol == "anthropic":
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"error": {"message": message, "type": kind, "code": kind, "param": None}}
    hdrs = {"x-should-retry": "false", "x-harness-gateway": kind, **(headers or {})}
    return web.json_response(body, status=status, headers=hdrs)


class StreamScrubber:
    """Removes secrets from a stream cut in arbitrary pieces: a piece ending in what
    could be the start of a secret keeps that tail back until the next piece (SSE
    pieces end in a newline, so in practice nothing is held)."""

    def __init__(self, secrets: list[bytes]) -> None:
        self.secrets = [s for s in secrets if s]
        self.hold = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.secrets:
            return chunk
        data = scrub(self.hold + chunk, self.secrets)
        keep = 0
        for s in self.secrets:
            tail = data[-(len(s) - 1):] if len(s) > 1 else b""
            i = tail.find(s[:1])
            while i != -1:
                if s.startswith(tail[i:]):
                    keep = max(keep, len(tail) - i)
                    break
                i = tail.find(s[:1], i + 1)
        self.hold = data[len(data) - keep:] if keep else b""
        return data[:len(data) - keep] if keep else data

    def end(self) -> bytes:
        held, self.hold = self.hold, b""
        return held


def filter_headers(headers, drop: set[str], secrets: list[bytes] = ()) -> dict[str, str]:
    out = {}
    for k, v in headers.items():
        if k.lower() in drop:
            continue
        if secrets and any(s.decode() in v for s in secrets):
            continue
        out[k] = v
    return out


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
