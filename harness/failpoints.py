"""Named points where a test can kill the harness, to prove that no crash loses work.

`HARNESS_FAILPOINTS="commit:2,event:7"` makes the process kill itself with SIGKILL
the 2nd time it passes the point `commit` (and the 7th time for `event`). Points:
`commit` (an attempt's commit object is written, its ref not yet), `snapshot` (a
record snapshot is written to its temporary file, not yet renamed), `event` (half
of an event line is written). Unset, every check is one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def _armed() -> dict[str, int]:
    spec = os.environ.get("HARNESS_FAILPOINTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, n = item.partition(":")
        out[name] = int(n) if n.isdigit() else 1
    return out


def hit(name: str) -> bool:
    """Count a pass through `name`; kill the process when it is the armed one.
    Returns True when the caller should tear its write and call kill() itself."""
    armed = _armed()
    if name not in armed:
        return False
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        due = _counts[name] == armed[name]
    if due and name == "event":
        return True
    if due:
        kill()
    return False


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
