"""What the gateway tells the harness: spend snapshots and verdicts (typed, frozen)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from ..errors import HarnessError
from ..records import ModelSpend


class AttemptKey(NamedTuple):
    """Whose call it is. A token stands for exactly one of these."""

    run: str
    task: str
    attempt: int


Spend = ModelSpend
"""Tokens and money spent so far by an attempt, a task or a run (the record the run keeps)."""


class Verdict(BaseModel):
    """Why an attempt's model calls stopped being answered; the harness ends the
    attempt with `status` and these numbers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: Literal["over_budget", "upstream_unavailable", "replay_diverged"]
    message: str
    """One line for the attempt's record, e.g. which budget and what was spent."""
    call: int
    """Sequence number (0-based) of the call that was refused, in the attempt's trace."""
    upstream: str | None = None
    spend: Spend
    """The attempt's spend when the call was refused."""


class GatewayError(HarnessError, RuntimeError):
    """The gateway itself cannot run (it cannot bind its address)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the versioning policy of versioning.py


class ExchangeTry(_Record):
    """One try at the upstream within an exchange."""

    n: int
    status: int | None = None
    """The upstream's HTTP status; None when the connection failed or timed out."""
    error: str | None = None
    elapsed_s: float | None = None
    wait_s: float | None = None
    """Wait before the next try (Retry-After or backoff); None for the last try."""


class ExchangeRequest(_Record):
    digest: str
    headers: dict[str, str] = {}
    body: Any = None
    """The JSON body with large parts as {"$blob": hash} (recording.expand restores it)."""
    content: dict | None = None
    """A body that was not JSON: {"text": ...} or {"blob": hash, "size": n}."""


class ExchangeResponse(_Record):
    status: int
    headers: dict[str, str] = {}
    content: dict | None = None
    """What the agent received: {"text": ...} or {"blob": hash, "size": n}."""
    chunks: list[int] | None = None
    """For a stream, the sizes of the pieces as relayed."""


class ModelExchange(_Record):
    """One line of an attempt's model trace (`model.jsonl`): one call, as recorded."""

    schema_version: int = 1
    seq: int
    run: str
    task: str
    attempt: int
    endpoint: str
    method: str = "POST"
    path: str
    query: str = ""
    model: str | None = None
    stream: bool = False
    upstream: str | None = None
    started_at: str | None = None
    request: ExchangeRequest
    response: ExchangeResponse | None = None
    outcome: str | None = None
    error: str | None = None
    tries: list[ExchangeTry] = []
    retry: int = 0
    queued_s: float = 0.0
    ttfb_s: float | None = None
    elapsed_s: float | None = None
    usage: dict[str, int] | None = None
    cost_usd: float = 0.0
