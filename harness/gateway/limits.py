"""Per-upstream limits: a concurrency cap whose queue is fair across attempts, a
circuit breaker, and the wait before a retry."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Hashable


class FairLimiter:
    """At most `cap` holders at once. Waiters are served round-robin across owners
    (attempts): an attempt with 50 queued calls gets one slot, then every other waiting
    attempt gets one, and so on, so no agent starves the others. Within an owner, first
    come first served. Lives on one event loop."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.in_flight = 0
        self._queues: dict[Hashable, deque[asyncio.Future]] = {}
        self._ring: deque[Hashable] = deque()

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def acquire(self, owner: Hashable) -> None:
        if self.in_flight < self.cap and not self._ring:
            self.in_flight += 1
            return
        fut = asyncio.get_running_loop().create_future()
        q = self._queues.get(owner)
        if q is None:
            q = self._queues[owner] = deque()
            self._ring.append(owner)
        q.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            else:
                self._forget(owner, fut)
            raise

    def _forget(self, owner: Hashable, fut: asyncio.Future) -> None:
        q = self._queues.get(owner)
        if q is not None and fut in q:
            q.remove(fut)
            if not q:
                del self._queues[owner]
                self._ring.remove(owner)

    def release(self) -> None:
        """Hand the slot to the next owner in turn, or free it."""
        while self._ring:
            owner = self._ring.popleft()
            q = self._queues[owner]
            fut = q.popleft()
            if q:
                self._ring.append(owner)
            else:
                del self._queues[owner]
            if not fut.done():
                fut.set_result(None)  # the slot moves to it; in_flight unchanged
                return
        self.in_flight -= 1


class Breaker:
    """Opens after `failures` consecutive failed tries and then refuses calls for
    `cooldown_s`. After the cool-down calls go through again; the next failure opens
    it at once (the count is still at the threshold), the next success closes it."""

    def __init__(self, failures: int, cooldown_s: float, clock=time.monotonic) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.consecutive = 0
        self.open_until = 0.0
        self.last_error = ""

    def allows(self) -> bool:
        return self.clock() >= self.open_until

    def failure(self, error: str) -> None:
        self.consecutive += 1
        self.last_error = error
        if self.consecutive >= self.threshold:
            self.open_until = self.clock() + self.cooldown_s

    def success(self) -> None:
        self.consecutive = 0
        self.open_until = 0.0


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def backoff_s(retry: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Wait before retry number `retry` (1-based): Retry-After when the upstream gave
    one, else base * 2**(retry-1) with up to 25% jitter; never more than `cap`."""
    if retry_after is not None:
        return min(cap, retry_after)
    wait = base * 2 ** (retry - 1)
    return min(cap, wait * (1 + random.random() / 4))
