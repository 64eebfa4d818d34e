"""A run's model gateway, seen from the run: its route, its lifetime, each attempt's token.

When the plan has a [model] table the run starts one `Gateway` before its first
attempt and stops it when the run ends, is cancelled or crashes (a resume starts a
new one). Where it listens comes from the sandbox backend: `open_model_route` before
the gateway binds, `seal_model_route` once its port is known, `close_model_route` at
the end. Each attempt gets its own token, recorded calls in its attempt dir
(`model.jsonl`, beside `output.log`) and the gateway's URL as its sandbox sees it;
the token is revoked when the attempt ends. The real keys stay in this process: every
host variable holding one is set empty in the agents' environment (the local sandbox
passes the host's environment on), and the gateway scrubs them from what it relays
and records.

How an attempt ends because of its model (see `ModelAttempt`):

- the gateway's verdict stops the attempt at once: past a budget no call of it will
  be answered (`over_budget`), and an upstream that failed every retry or whose
  circuit is open will not answer before its cool-down (`upstream_unavailable`). The
  attempt ends with that status and the numbers in its reason, whatever the agent did
  after; a cancel still wins.
- `over_budget` is final: the task is not retried (a new attempt would spend more of
  what the plan capped). `upstream_unavailable` is retried like a failure when the
  task has retries left, but not before the upstream's breaker cool-down has passed.
- stall: when a gateway runs, the harness watches for silence itself (the sandbox is
  given no `stall_s`): the attempt is alive while its log grows or it has a model call
  in flight (queued behind other agents, retried, streaming) or one ended within
  `stall_s`. Past the log's cap the output can no longer be seen, so the harness stops
  judging silence (the timeout still applies).

Replay (`harness replay`, see `run.replay`): given `replay` (for each attempt, by
task and number, the recording it is to be served), the gateway calls no upstream
and needs no key; each attempt's token serves its recording in order, and the first
request that differs ends the attempt with a `replay_diverged` verdict (the
scheduler records it `failed`, the verdict's line as its reason). The host's key
variables are still set empty for the agents, should they be set.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..records import Attempt, ModelSpend, SandboxRequest, SandboxResult
from ..sandbox.base import ModelRoute, Sandbox
from ..sandbox.output import DEFAULT_MAX_LOG_BYTES, STEP_MARK

if TYPE_CHECKING:
    from ..config import ModelConfig, ResolvedTask
    from ..gateway import Gateway, Verdict

BLOBS_DIR = "model-blobs"
"""Under the run's dir: the bodies every attempt's trace refers to, stored once."""
ORDER_FILE = "model-steps.json"
"""Beside an attempt's model.jsonl: how many of its steps came before each call."""


def total_spend(attempts: Iterable[Attempt | Any]) -> ModelSpend | None:
    """The sum of the attempts' (or results') spend; None when none has any."""
    return ModelSpend.total(a.spend for a in attempts)


def cooldown_s(config: ModelConfig, upstream: str | None) -> float:
    """How long an attempt that ended upstream_unavailable waits before the next one:
    the breaker cool-down of its upstream (the longest one when unknown)."""
    ups = [u for u in config.upstream if u.name == upstream] or config.upstream
    return max(u.breaker_cooldown_s for u in ups)


def spend_from_trace(attempt_dir: Path) -> ModelSpend | None:
    """What an attempt spent, read back from its recording (`model.jsonl`): for an
    attempt whose process died before it could say. None when it has no recording."""
    try:
        lines = (attempt_dir / "model.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    calls = inp = out = refused = 0
    cost = 0.0
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue  # torn by the kill
        if not isinstance(e, dict):
            continue
        usage = e.get("usage") if isinstance(e.get("usage"), dict) else None
        if usage is not None:
            calls += 1
            inp += int(usage.get("input_tokens") or 0)
            out += int(usage.get("output_tokens") or 0)
            cost += float(e.get("cost_usd") or 0.0)
        elif e.get("outcome") in ("over_budget", "upstream_unavailable"):
            refused += 1
    return ModelSpend(calls=calls, input_tokens=inp, output_tokens=out, cost_usd=cost, refused=refused)


class RunModel:
    """The run's gateway and its route. `start` before the first attempt, `close`
    when the run is over (idempotent)."""

    def __init__(self, config: ModelConfig, run_id: str, run_dir: Path, sandbox: Sandbox,
                 replay: Mapping[tuple[str, int], Path] | None = None) -> None:
        self.config = config
        self.replay = replay
        """In replay mode: each attempt's recording (its model.jsonl) by (task, number)."""
        self.run_id = run_id
        self.run_dir = run_dir
        self.sandbox = sandbox
        self.route: ModelRoute | None = None
        self.gateway: Gateway | None = None
        self._attempts: dict[tuple, ModelAttempt] = {}
        self._lock = threading.Lock()
        self._blanked: dict[str, str] = {}
        """Every host variable holding an upstream's key, set empty for the agents (a
        backend that passes the host's environment on, like local, would hand it over)."""

    def start(self, seed: Iterable[tuple[str, Attempt]] = ()) -> str:
        """Open the route, start the gateway on it and seal it. `seed`: attempts of
        this run that earlier processes finished (a resume, a conflict retry), so the
        task and run budgets count what they spent. Returns the URL agents use.
        Raises PlanError (a key variable unset), GatewayError, SandboxError."""
        from ..gateway import Gateway

        self.route = self.sandbox.open_model_route(self.run_id)
        try:
            replaying = self.replay is not None
            self.gateway = Gateway(None if replaying else self.config, self.run_id,
                                   blobs_dir=self.run_dir / BLOBS_DIR, host=self.route.bind_host, port=0,
                                   on_verdict=self._on_verdict, on_call=self._on_call, replay=replaying)
            self._seed(seed)
            if replaying:  # no key is needed; any that is set still stays out of the sandboxes
                keys = {v.strip() for v in (os.environ.get(u.api_key_env, "") for u in self.config.upstream)
                        if v.strip()}
            else:
                keys = set(self.config.keys(dict(os.environ)).values())
            self._blanked = {k: "" for k, v in os.environ.items() if v.strip() in keys}
            self.gateway.start()
            self.sandbox.seal_model_route(self.run_id, self.gateway.port)
        except BaseException:
            self.close()
            raise
        return self.agent_url

    @property
    def agent_url(self) -> str:
        assert self.route is not None and self.gateway is not None
        host = self.route.agent_host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.gateway.port}"

    def close(self) -> list[str]:
        """Stop the gateway (what is being recorded is written out) and close the route.
        Returns what could not be recorded (a full disk, say), one line each."""
        gw, self.gateway = self.gateway, None
        try:
            if gw is not None:
                gw.stop()
                return gw.recording_errors
            return []
        finally:
            if self.route is not None:
                self.route = None
                self.sandbox.close_model_route(self.run_id)

    def spend(self) -> ModelSpend:
        """What the run spent through this gateway."""
        assert self.gateway is not None
        return self.gateway.spend(self.run_id)

    def _seed(self, seed: Iterable[tuple[str, Attempt]]) -> None:
        from ..gateway import AttemptKey
        from ..gateway.accounting import Usage

        seen = set()
        for task_id, a in seed:
            if a.spend is None or (task_id, a.number) in seen:
                continue
            seen.add((task_id, a.number))
            self.gateway.ledger.add(AttemptKey(self.run_id, task_id, a.number),
                                    Usage(a.spend.input_tokens, a.spend.output_tokens), a.spend.cost_usd)

    def attempt(self, task: ResolvedTask, number: int, attempt_dir: Path, sandbox: Sandbox) -> ModelAttempt:
        """A token for one attempt, and the sandbox the agent runs in (the real one,
        with the model's variables, network and stall watch). Call `finish` after."""
        assert self.gateway is not None and self.route is not None
        recording = self.replay.get((task.id, number)) if self.replay is not None else None
        token = self.gateway.issue_token(self.run_id, task.id, number, trace_dir=attempt_dir,
                                         budget=task.model_budgets(self.config.budget), replay_trace=recording)
        env = {**self._blanked, **self.gateway.agent_env(token, base_url=self.agent_url)}
        if task.model:
            env["HARNESS_MODEL"] = task.model
        ma = ModelAttempt(self, (self.run_id, task.id, number), token, env, sandbox, attempt_dir)
        with self._lock:
            self._attempts[ma.key] = ma
        return ma

    def _on_verdict(self, key, verdict: Verdict) -> None:
        ma = self._attempts.get(tuple(key))
        if ma is not None:
            ma.on_verdict(verdict)

    def _on_call(self, key, seq: int, started: bool) -> None:
        ma = self._attempts.get(tuple(key))
        if ma is not None:
            ma.on_call(seq, started)

    def _forget(self, ma: ModelAttempt) -> None:
        with self._lock:
            self._attempts.pop(ma.key, None)


class ModelOutcome:
    """What the gateway says of an ended attempt."""

    def __init__(self, spend: ModelSpend, verdict: Verdict | None) -> None:
        self.spend = spend
        self.verdict = verdict

    @property
    def reason(self) -> str | None:
        """The verdict's line with the attempt's numbers, or None."""
        v, s = self.verdict, self.spend
        if v is None:
            return None
        return (f"{v.message.removeprefix('harness gateway: ')} (call {v.call}; attempt spent {s.calls} "
                f"call(s), {s.input_tokens} in / {s.output_tokens} out tokens, ${s.cost_usd:.4f})")


class ModelAttempt:
    """The sandbox an attempt of a model run is given: the real one, with the gateway's
    variables in the environment, the route's network, and the stall watch that
    counts model calls as life (module docstring). Thread-safe: the gateway calls in
    from its own thread."""

    def __init__(self, owner: RunModel, key: tuple, token: str, env: dict[str, str], inner: Sandbox,
                 attempt_dir: Path) -> None:
        self.owner = owner
        self.key = key
        self.token = token
        self.env = env
        self.inner = inner
        self.attempt_dir = attempt_dir
        self.name = inner.name
        self.isolates = inner.isolates
        self.stopped: str | None = None
        """Why the harness stopped the command: "stalled" or "verdict"."""
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_call = time.monotonic()
        self._offsets: dict[int, int] = {}
        self._log: Path | None = None

    # --- the Sandbox protocol (the rest is the real sandbox's) -----------------------

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, req: SandboxRequest) -> SandboxResult:
        stall_s = req.stall_s
        self._log = req.log_path
        req = req.model_copy(update={"env": {**req.env, **self.env}, "model_network": self.owner.route.network,
                                     "stall_s": None})
        if stall_s is None:
            return self.inner.run(req)
        done = threading.Event()
        cap = req.max_log_bytes or DEFAULT_MAX_LOG_BYTES
        watch = threading.Thread(target=self._watch, args=(req.log_path, stall_s, cap, done), daemon=True,
                                 name=f"stall-{self.key[1]}.{self.key[2]}")
        watch.start()
        try:
            res = self.inner.run(req)
        finally:
            done.set()
            watch.join()
        if self.stopped == "stalled" and res.exit_code is None and not res.timed_out:
            res = res.model_copy(update={"reason": "stalled"})
        return res

    def _watch(self, log: Path, stall_s: float, cap: int, done: threading.Event) -> None:
        size, alive = _size(log), time.monotonic()
        while not done.wait(max(0.05, min(1.0, stall_s / 4))):
            now, grown = time.monotonic(), _size(log)
            with self._lock:
                busy, last_call = self._in_flight > 0, self._last_call
            if grown != size or busy or grown >= cap:
                size, alive = grown, now
            alive = max(alive, last_call)
            if now - alive > stall_s:
                self._stop("stalled")
                return

    def _stop(self, why: str) -> None:
        with self._lock:
            if self.stopped is not None:
                return
            self.stopped = why
        threading.Thread(target=self._stop_command, daemon=True, name=f"stop-{self.key[1]}.{self.key[2]}").start()

    def _stop_command(self) -> None:
        # `Sandbox.stop` scoped to the attempt's dir: a backend finds the command by its
        # harness dir under the dir it is given (local: as named in the command's
        # environment; docker: the mount's source, resolved).
        dirs = dict.fromkeys([self.attempt_dir, self.attempt_dir.resolve()])
        for d in dirs:
            try:
                self.inner.stop(self.key[0], d)
            except Exception:  # a backend that cannot stop it: the timeout still will
                pass

    # --- from the gateway's thread --------------------------------------------------

    def on_call(self, seq: int, started: bool) -> None:
        with self._lock:
            self._in_flight += 1 if started else -1
            self._last_call = time.monotonic()
            if not started and self._log is not None:
                # Taken when the call ends: a step the agent announced before the call has
                # reached the log by then, unless the call took less time than the log's
                # reader needed to catch up (an answer within milliseconds on a loaded
                # machine); then the call is listed just before that step.
                self._offsets[seq] = _size(self._log)

    def on_verdict(self, verdict: Verdict) -> None:
        self._stop("verdict")

    # --- after the attempt ----------------------------------------------------------

    def finish(self) -> ModelOutcome:
        """Revoke the token, write out its recording, say what it spent and why its calls
        stopped being answered (when they did)."""
        gw = self.owner.gateway
        run, task, number = self.key
        gw.revoke(self.token)
        gw.settle(run, task, number)  # its last call counted and handed to the recorder
        self.owner._forget(self)
        gw.flush()
        self._write_order()
        return ModelOutcome(gw.spend(run, task, number), gw.verdict(run, task, number))

    def _write_order(self) -> None:
        """For each call, how many step lines the log held when it ended, so `harness
        show` lists calls and steps in the order they happened (a step an agent
        announces while its call is still going is listed before that call)."""
        if not self._offsets or self._log is None:
            return
        ends: list[int] = []
        pos = 0
        try:
            with open(self._log, "rb") as fh:
                for line in fh:
                    pos += len(line)
                    if line.startswith(STEP_MARK):
                        ends.append(pos)
        except OSError:
            return
        order = {str(seq): bisect.bisect_right(ends, off) for seq, off in sorted(self._offsets.items())}
        try:
            (self.attempt_dir / ORDER_FILE).write_text(json.dumps({"schema_version": 1,
                                                                   "steps_before_call": order}))
        except OSError:
            pass


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
