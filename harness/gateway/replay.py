"""Serving an attempt's recorded exchanges back, in order, with no upstream and no key.

A call is matched to the recording by its sequence number and request digest. The
first call that differs (another endpoint, another body, more calls than recorded)
is refused with 409 and a `replay_diverged` verdict naming the call and the first
difference, so a rerun that strays is stopped there rather than answered wrongly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .accounting import Usage
from .recording import BlobStore, expand, load_content, read_trace, request_digest


@dataclass
class ReplayTrace:
    """One attempt's recording and how far its replay has got."""

    entries: list[dict]
    next: int = 0
    served: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "ReplayTrace":
        return cls(read_trace(path))


def first_difference(recorded: Any, got: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, as `$.messages[3].content: 'a…' != 'b…'`."""
    if type(recorded) is not type(got):
        return f"{path}: {_short(recorded)} != {_short(got)}"
    if isinstance(recorded, dict):
        for k in list(recorded) + [k for k in got if k not in recorded]:
            if k not in got:
                return f"{path}.{k}: missing (recorded {_short(recorded[k])})"
            if k not in recorded:
                return f"{path}.{k}: not in the recording (got {_short(got[k])})"
            d = first_difference(recorded[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(recorded, list):
        for i, (a, b) in enumerate(zip(recorded, got)):
            d = first_difference(a, b, f"{path}[{i}]")
            if d:
                return d
        if len(recorded) != len(got):
            return f"{path}: {len(recorded)} items recorded, {len(got)} sent"
        return None
    return None if recorded == got else f"{path}: {_short(recorded)} != {_short(got)}"


def _short(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


class Replayer:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def serve(self, proxy, x) -> web.StreamResponse:
        book: ReplayTrace | None = x.grant.replay
        if book is None:
            return proxy.refuse(x, 409, "replay_diverged", "harness replay: this token has no recording",
                                 "replay_diverged", verdict="replay_diverged")
        i = book.next
        if i >= len(book.entries):
            return self._diverged(proxy, x, f"call #{i}: the recording ends after {len(book.entries)} calls")
        e = book.entries[i]
        if e.get("endpoint") != x.endpoint:
            return self._diverged(proxy, x, f"call #{i}: recorded /{e.get('endpoint')}, got /{x.endpoint}")
        req = e.get("request", {})
        if req.get("digest") != request_digest(x.body, x.parsed):
            if "body" in req and x.parsed is not None:
                what = first_difference(expand(req["body"], self.blobs), x.parsed) or "the bytes differ"
            else:
                what = "the body differs"
            return self._diverged(proxy, x, f"call #{i} ({e.get('model')}): {what}")
        book.next += 1
        book.served.append(i)
        rec = e.get("response") or {}
        data = load_content(rec["content"], self.blobs) if "content" in rec else b""
        usage = Usage(**(e.get("usage") or {}))
        proxy.ledger.add(x.grant.key, usage, float(e.get("cost_usd") or 0.0))
        x.entry.update(outcome="replayed", upstream=e.get("upstream"), usage=e.get("usage"),
                       cost_usd=e.get("cost_usd") or 0.0, response={"status": rec.get("status", 200),
                                                                   "headers": rec.get("headers", {})})
        x.response_body = data
        headers = rec.get("headers", {})
        if "chunks" not in rec:
            return web.Response(status=rec.get("status", 200), body=data, headers=headers)
        out = web.StreamResponse(status=rec.get("status", 200), headers=headers)
        x.entry["response"]["chunks"] = rec["chunks"]
        await out.prepare(x.request)
        pos = 0
        for n in rec["chunks"]:
            await out.write(data[pos:pos + n])
            pos += n
        proxy.finish(x)
        await out.write_eof()
        return out

    def _diverged(self, proxy, x, what: str) -> web.Response:
        return proxy.refuse(x, 409, "replay_diverged", f"harness replay diverged at {what}",
                             "replay_diverged", verdict="replay_diverged")
