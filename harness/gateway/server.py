"""The Gateway: one per run, serving on its own thread and event loop, driven from
synchronous code."""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path
from typing import Callable, Mapping

from aiohttp import web

from ..config import BudgetLimit, ModelBudgets, ModelConfig
from ..errors import UsageError
from .accounting import Ledger
from .proxy import Grant, Proxy
from .recording import BlobStore, Recorder
from .replay import Replayer, ReplayTrace
from .serving import BackgroundServer
from .types import AttemptKey, GatewayError, Spend, Verdict

TRACE_NAME = "model.jsonl"
MAX_REQUEST_BYTES = 64 * 2**20
SETTLE_S = 2.0
"""Most an attempt's spend or verdict waits for its calls in flight to be counted."""


class Gateway(BackgroundServer):
    """A reverse proxy between a run's agents and its model upstreams.

    >>> gw = Gateway(model_config, run_id="r1", blobs_dir=run_dir / "blobs")
    >>> url = gw.start()                       # "http://127.0.0.1:PORT"
    >>> token = gw.issue_token("r1", "t1", 1, trace_dir=attempt_dir)
    >>> env = gw.agent_env(token)              # OPENAI_BASE_URL, ANTHROPIC_API_KEY, ...
    >>> ...the agent runs...
    >>> gw.revoke(token); gw.verdict("r1", "t1", 1); gw.spend("r1", "t1", 1)
    >>> gw.stop()

    `on_verdict(key, verdict)` is called on the gateway's thread when an attempt's call
    is refused (over budget, upstream unavailable, replay diverged), so the harness can
    stop that attempt at once; it must not block. `on_call(key, seq, started)` is called
    on that thread when an attempt's call arrives (True) and when it ends (False),
    whatever its outcome, so the harness knows which attempts have calls in flight
    (queued, retried, streaming); it must not block either.

    Raises PlanError (from `ModelConfig.keys`) when an upstream's key variable is unset.
    With `replay=True` no upstream is called and no key is needed: each token serves
    the recording given to `issue_token(replay_trace=...)`.
    """

    def __init__(self, config: ModelConfig | None, run_id: str, *, blobs_dir: Path | None = None,
                 host: str = "127.0.0.1", port: int = 0, environ: Mapping[str, str] | None = None,
                 on_verdict: Callable[[AttemptKey, Verdict], None] | None = None,
                 on_call: Callable[[AttemptKey, int, bool], None] | None = None,
                 replay: bool = False) -> None:
        if config is None and not replay:
            raise UsageError("a gateway needs a [model] table unless it replays")
        super().__init__()
        self.config = config
        self.run_id = run_id
        self.host, self.port = host, port
        keys = {} if replay or config is None else config.keys(dict(os.environ if environ is None else environ))
        self.ledger = Ledger()
        self.blobs = BlobStore(blobs_dir, list(keys.values())) if blobs_dir is not None else None
        self.recorder = Recorder(self.blobs, list(keys.values())) if self.blobs is not None else None
        self._grants: dict[str, Grant] = {}
        self._revoked: set[str] = set()
        self.proxy = Proxy(config, keys, self.ledger, self.recorder, self._grants, self._revoked, on_verdict,
                           on_call)
        if replay:
            if self.blobs is None:
                raise UsageError("replay needs the recorded run's blobs_dir")
            self.proxy.replay = Replayer(self.blobs)

    # --- lifecycle ----------------------------------------------------------------

    client_max_size = MAX_REQUEST_BYTES

    def start(self) -> str:
        """Serve on host:port (port 0: any free one). Returns the base URL, e.g.
        `http://127.0.0.1:41234`; agents use `<url>/v1`. Raises GatewayError when it
        cannot bind."""
        try:
            return self._serve(f"gateway-{self.run_id}")
        except BaseException as exc:
            if self.recorder is not None:
                self.recorder.close()
            raise GatewayError(f"gateway cannot listen on {self.host}:{self.port}: {exc}") from None

    def stop(self) -> None:
        """Close every connection, stop the thread, and write out what is still being recorded."""
        if self._unserve() and self.recorder is not None:
            self.recorder.close()

    def make_app(self, app: web.Application) -> None:
        app.add_routes(self.proxy.routes())

    async def _open(self) -> None:
        await self.proxy.open()

    async def _close(self) -> None:
        await self.proxy.close()

    # --- tokens -------------------------------------------------------------------

    def issue_token(self, run_id: str, task_id: str, attempt: int, *, trace_dir: Path | None = None,
                    budget: ModelBudgets | None = None, replay_trace: Path | None = None) -> str:
        """A new token for one attempt. Its calls are recorded to `trace_dir/model.jsonl`
        when given (needs the gateway's blobs_dir); `budget` replaces the plan's attempt
        and task limits for it (a task or strategy's own budget). Raises UsageError for
        another run's id or a trace without a blobs dir."""
        if run_id != self.run_id:
            raise UsageError(f"gateway of run {self.run_id!r} cannot issue tokens for run {run_id!r}")
        if trace_dir is not None and self.recorder is None:
            raise UsageError("recording a trace needs the gateway's blobs_dir")
        base = self.config.budget if self.config is not None else ModelBudgets()
        limits: dict[str, BudgetLimit] = {"attempt": (budget or base).attempt, "task": (budget or base).task,
                                          "run": base.run}
        token = "hgw-" + _secrets.token_urlsafe(24)
        replay = ReplayTrace.load(replay_trace) if replay_trace is not None else None
        self._grants[token] = Grant(AttemptKey(run_id, task_id, attempt),
                                    Path(trace_dir) / TRACE_NAME if trace_dir is not None else None, limits, replay)
        return token

    def revoke(self, token: str) -> None:
        """End a token (its attempt ended): further calls with it get 401."""
        if self._grants.pop(token, None) is not None:
            self._revoked.add(token)

    def agent_env(self, token: str, base_url: str | None = None) -> dict[str, str]:
        """The variables an agent needs to reach its model through this gateway.
        `base_url` is the gateway as the sandbox sees it (default: `self.url`)."""
        url = (base_url or self.url or "").rstrip("/")
        return {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_BASE": f"{url}/v1", "OPENAI_API_KEY": token,
                "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": token,
                "HARNESS_MODEL_URL": url, "HARNESS_MODEL_TOKEN": token}

    # --- what the harness reads ---------------------------------------------------

    def spend(self, run: str, task: str | None = None, attempt: int | None = None) -> Spend:
        """Spend so far of a run, a task (all attempts) or one attempt. One attempt's
        spend waits (at most SETTLE_S) for its calls still in flight to be counted."""
        if task is not None and attempt is not None:
            self.settle(run, task, attempt)
        return self.ledger.spend(run, task, attempt)

    def settle(self, run: str, task: str, attempt: int) -> bool:
        """Wait (at most SETTLE_S) until the attempt has no call in flight: an agent can be
        done with a call (it read a stream's last event) a moment before the gateway has
        counted and recorded it. False when the wait ran out. Not from the gateway's thread."""
        return self.proxy.settle(AttemptKey(run, task, attempt), SETTLE_S)

    def verdict(self, run: str, task: str, attempt: int) -> Verdict | None:
        """Why the attempt's calls stopped being answered (over_budget, upstream_unavailable,
        replay_diverged), or None. An upstream_unavailable verdict is dropped when a later
        call of the attempt is answered; over_budget stays. Waits like `spend`."""
        self.settle(run, task, attempt)
        return self.proxy.verdicts.get(AttemptKey(run, task, attempt))

    def replay_position(self, token: str) -> tuple[int, int] | None:
        """(calls served, calls recorded) of a replaying token, or None."""
        g = self._grants.get(token)
        return (g.replay.next, len(g.replay.entries)) if g is not None and g.replay is not None else None

    def upstream_stats(self) -> dict[str, dict]:
        """Per upstream: calls in flight, waiting, the most ever in flight, breaker state."""
        return {name: {"in_flight": u.limiter.in_flight, "waiting": u.limiter.waiting,
                       "max_in_flight": u.max_in_flight, "circuit_open": not u.breaker.allows(),
                       "consecutive_failures": u.breaker.consecutive}
                for name, u in self.proxy.upstreams.items()}

    @property
    def recording_errors(self) -> list[str]:
        """What could not be recorded (a full disk, an unwritable trace dir), one line each."""
        return list(self.recorder.errors) if self.recorder is not None else []

    def flush(self) -> None:
        """Wait until every finished exchange is in its trace file."""
        if self.recorder is not None:
            self.recorder.flush()
