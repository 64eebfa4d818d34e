"""What the gateway tells the harness: spend snapshots and verdicts (typed, frozen)."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from ..errors import HarnessError


class AttemptKey(NamedTuple):
    """Whose call it is. A token stands for exactly one of these."""

    run: str
    task: str
    attempt: int


class Spend(BaseModel):
    """Tokens and money spent so far by an attempt, a task or a run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    calls: int = 0
    """Calls answered by an upstream (any status), retries not counted."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    refused: int = 0
    """Calls the gateway refused (over budget, circuit open)."""

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


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
