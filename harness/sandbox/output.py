"""What both sandboxes do with a command's output while it runs.

The merged stdout+stderr is appended to the attempt's log as it comes, up to
`max_log_bytes`; past that it is counted, not written, and `close` ends the log with
one marker line saying how much was dropped. Memory never depends on how much is
printed: the last TAIL_BYTES are kept for the result (always the latest output, cap
or not); lines that start with STEP_MARK are the
agent's steps (its tool trace); and the watch says when the command should be
stopped early: no output for `stall_s` seconds ("stalled"), or more steps than
`max_steps` ("steps"). Fed from one thread, asked from another.

The step budget is enforced the moment the line arrives (`on_stop` is called from
the reader); silence and the timeout are noticed by the runner polling `verdict`.
Whatever stopped the command first is `stopped`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import BinaryIO, Callable

TAIL_BYTES = 4096
STEP_MARK = b"::harness-step::"
"""An agent announces a step (a tool call, an edit, a test run) by printing a line
that starts with this; the rest of the line describes it."""
MAX_TRACE = 1000
MAX_STEP_TEXT = 200
DEFAULT_MAX_LOG_BYTES = 64 * 2**20
"""Per-attempt log cap when a request names none."""
TRUNCATION_MARK = b"::harness-log-truncated::"
"""Starts the one line that ends a capped log: `<mark> dropped N bytes past the cap of M`."""


def truncation_line(dropped: int, cap: int) -> bytes:
    return f"\n{TRUNCATION_MARK.decode()} dropped {dropped} bytes past the cap of {cap}\n".encode()


class OutputWatch:
    def __init__(self, log: BinaryIO, *, stall_s: float | None = None, max_steps: int | None = None,
                 on_stop: Callable[[], None] | None = None, max_log_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.max_log_bytes = max_log_bytes if max_log_bytes is not None else DEFAULT_MAX_LOG_BYTES
        self.written = 0
        """Bytes of output written to the log (the marker line not included)."""
        self.dropped = 0
        """Bytes of output seen past the cap, or after `close`: counted, not written."""
        self._closed = False
        self.on_stop = on_stop
        self.stopped: str | None = None
        """Why the command was stopped ("timeout", "stalled", "steps"), if it was."""
        self.stall_s = stall_s
        self.max_steps = max_steps
        self.clock = clock
        self.complete = False
        """Set by the reader when the stream ended normally, so the tail is the last output."""
        self.steps = 0
        self.trace: list[str] = []
        self._last = clock()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._line = b""
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            room = 0 if self._closed else max(0, self.max_log_bytes - self.written)
            if room:
                self.log.write(chunk[:room])
                self.log.flush()
                self.written += min(room, len(chunk))
            self.dropped += max(0, len(chunk) - room)
            self._last = self.clock()
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size - len(self._chunks[0]) >= TAIL_BYTES:
                self._size -= len(self._chunks.popleft())
            *lines, self._line = (self._line + chunk).split(b"\n")
            for line in lines:
                self._take(line)
            if len(self._line) > 65536:  # a line without end: not a step line
                self._line = b""
            over = self.max_steps is not None and self.steps > self.max_steps
        if over and self.stop("steps") and self.on_stop is not None:
            self.on_stop()

    def stop(self, reason: str) -> bool:
        """Record why the command is being stopped; True only for the first reason."""
        with self._lock:
            if self.stopped is not None:
                return False
            self.stopped = reason
            return True

    def finish(self) -> None:
        """The stream ended: a last line without a newline still counts (and a step
        past the budget in it still ends the attempt as "steps")."""
        with self._lock:
            if self._line:
                self._take(self._line)
                self._line = b""
            self.complete = True
            over = self.max_steps is not None and self.steps > self.max_steps
        if over:
            self.stop("steps")

    def close(self) -> None:
        """The runner is done with the log: write the truncation marker (once, when
        anything was dropped) and never touch the log again, so it may be closed even
        while a reader thread is still feeding (that output is only counted)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.dropped:
                self.log.write(truncation_line(self.dropped, self.max_log_bytes))
                self.log.flush()

    def _take(self, line: bytes) -> None:
        if line.startswith(STEP_MARK):
            self.steps += 1
            if len(self.trace) < MAX_TRACE:
                text = line[len(STEP_MARK):].decode("utf-8", "replace").strip()
                self.trace.append(text[:MAX_STEP_TEXT])

    def tail(self) -> str:
        with self._lock:
            return b"".join(self._chunks)[-TAIL_BYTES:].decode("utf-8", "replace")

    def stalled(self) -> bool:
        """No output for longer than stall_s."""
        with self._lock:
            return self.stall_s is not None and self.clock() - self._last > self.stall_s

    def poll_s(self, timeout_s: float) -> float:
        """How often the runner should look for silence."""
        return max(0.05, min(1.0, self.stall_s / 4)) if self.stall_s is not None else timeout_s
