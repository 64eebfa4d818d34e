"""Usage read from answers (plain and streamed), cost, spend per attempt/task/run,
and the budget check made before each call."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from ..config import BudgetLimit, UpstreamConfig
from .types import AttemptKey, Spend


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def merge(self, usage: object) -> None:
        """Fold in one `usage` object. Streams report cumulative counts (Anthropic's
        message_delta repeats output_tokens so far), so each field keeps its maximum."""
        if not isinstance(usage, dict):
            return
        inp = _int(usage.get("input_tokens")) or _int(usage.get("prompt_tokens"))
        # Anthropic counts cached prompt tokens apart from input_tokens; they are input too.
        inp += _int(usage.get("cache_creation_input_tokens")) + _int(usage.get("cache_read_input_tokens"))
        out = _int(usage.get("output_tokens")) or _int(usage.get("completion_tokens"))
        self.input_tokens = max(self.input_tokens, inp)
        self.output_tokens = max(self.output_tokens, out)

    def cost(self, upstream: UpstreamConfig) -> float:
        return (self.input_tokens * upstream.input_price_per_mtok
                + self.output_tokens * upstream.output_price_per_mtok) / 1e6


def _int(v: object) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def _usage_of(obj: object) -> object:
    """The usage object of an answer or a stream event, wherever the protocol puts it:
    top level (chat, Anthropic message_delta), under `response` (Responses events) or
    under `message` (Anthropic message_start)."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("usage"), dict):
        return obj["usage"]
    for k in ("response", "message"):
        inner = obj.get(k)
        if isinstance(inner, dict) and isinstance(inner.get("usage"), dict):
            return inner["usage"]
    return None


class UsageMeter:
    """Reads usage from an answer as it passes: whole bodies, or SSE bytes fed in the
    pieces they arrive in (a line may be split across pieces)."""

    def __init__(self) -> None:
        self.usage = Usage()
        self._partial = b""

    def body(self, data: bytes) -> None:
        try:
            self.usage.merge(_usage_of(json.loads(data)))
        except (ValueError, UnicodeDecodeError):
            pass

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            # Only the few events that carry usage are parsed.
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    self.usage.merge(_usage_of(json.loads(line[5:])))
                except (ValueError, UnicodeDecodeError):
                    pass


class Ledger:
    """Spend per attempt, task and run; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spend: dict[tuple, dict] = {}

    @staticmethod
    def _keys(key: AttemptKey) -> tuple[tuple, ...]:
        return ((key.run,), (key.run, key.task), (key.run, key.task, key.attempt))

    def add(self, key: AttemptKey, usage: Usage, cost: float, *, refused: bool = False) -> None:
        with self._lock:
            for k in self._keys(key):
                s = self._spend.setdefault(k, {"calls": 0, "input_tokens": 0, "output_tokens": 0,
                                               "cost_usd": 0.0, "refused": 0})
                if refused:
                    s["refused"] += 1
                    continue
                s["calls"] += 1
                s["input_tokens"] += usage.input_tokens
                s["output_tokens"] += usage.output_tokens
                s["cost_usd"] += cost

    def spend(self, run: str, task: str | None = None, attempt: int | None = None) -> Spend:
        k: tuple = (run,) if task is None else (run, task) if attempt is None else (run, task, attempt)
        with self._lock:
            return Spend(**self._spend.get(k, {}))

    def over(self, key: AttemptKey, limits: dict[str, BudgetLimit]) -> str | None:
        """Why the next call of `key` would be past a budget, or None. `limits` maps
        `attempt`, `task`, `run` to their limits."""
        scopes = dict(zip(("run", "task", "attempt"), self._keys(key)))
        for scope in ("attempt", "task", "run"):
            limit = limits.get(scope)
            if limit is None:
                continue
            s = self.spend(*scopes[scope])
            if limit.tokens is not None and s.tokens >= limit.tokens:
                return (f"{scope} token budget spent: {s.tokens} of {limit.tokens} tokens "
                        f"({s.input_tokens} in, {s.output_tokens} out, ${s.cost_usd:.4f}, {s.calls} calls)")
            if limit.cost_usd is not None and s.cost_usd >= limit.cost_usd:
                return (f"{scope} cost budget spent: ${s.cost_usd:.4f} of ${limit.cost_usd:.4f} "
                        f"({s.tokens} tokens, {s.calls} calls)")
        return None
