"""lazy-events: make the event records in engine/events.py lazy. An event is
still a dict with the same keys, but the costly derived fields ("ts",
"notional", "text" and the JSON "wire" form) are computed on first access
(dict.__missing__) instead of for every event up front.

Attempt 1 fails on purpose: its edit is anchored on a block that the
baseline does not contain, so nothing is written and the script exits
non-zero. From attempt 2 on it anchors on the real baseline text."""

import os
import sys

from edits import engine_file, rewrite

TARGET = engine_file("events.py")
ATTEMPT = int(os.environ.get("HARNESS_ATTEMPT", "1"))

# The anchor the first attempt looks for: how event building was expected to
# look (a single make_event helper). The baseline has no such helper.
STALE_ANCHOR = "def make_event(kind: str, **fields) -> dict:\n"

EXPECTED = [
    "def _now() -> str:\n    return datetime.now(timezone.utc).isoformat()\n",
    "def order_event(seq: int, status: str, order_id: int, account: str, symbol: str, side: str,\n"
    "                kind: str, qty, price, reason: Optional[str] = None) -> dict:\n",
    "def fill_event(seq: int, symbol: str, maker_order_id: int, taker_order_id: int,\n"
    "               buyer: str, seller: str, price: Decimal, qty: int) -> dict:\n",
    "    return _finish(event)\n",
]

NEW = '''"""Event records: one per accepted, rejected or cancelled order and per fill.

An event is a dict. Every event carries a sequence number, a UTC timestamp
("ts"), a human-readable "text" and a "wire" form (sorted-key JSON with
decimals as strings) ready to publish. The derived fields ("ts", "text",
"wire" and a fill's "notional") are built on first access, so events nobody
reads cost only their raw fields. Read them by indexing (``event["text"]``,
``event.get("text")``); ``to_dict()`` gives a plain dict with every field.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

from . import money

_LAZY = ("ts", "notional", "text", "wire")


class Event(dict):
    """A dict whose derived fields are filled in on first access."""

    __slots__ = ("_created",)

    def __init__(self, fields: dict) -> None:
        super().__init__(fields)
        self._created = time.time()

    def __missing__(self, key):
        if key == "ts":
            value = datetime.fromtimestamp(self._created, timezone.utc).isoformat()
        elif key == "notional" and dict.get(self, "type") == "fill":
            value = money.notional(self["price"], self["qty"])
        elif key == "text":
            value = _order_text(self) if dict.get(self, "type") == "order" else _fill_text(self)
        elif key == "wire":
            value = _wire(self)
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict:
        for key in _LAZY:
            self.get(key)
        return dict(self)


def _wire(event: Event) -> str:
    event["ts"]
    event["text"]
    if dict.get(event, "type") == "fill":
        event["notional"]
    return json.dumps(
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in dict.items(event) if k != "wire"},
        sort_keys=True,
    )


def _order_text(event: Event) -> str:
    price = event["price"]
    price_text = f"{price:.2f}" if isinstance(price, Decimal) else "MKT"
    text = (f"{event['status'].upper()} #{event['order_id']} {event['account']} {event['side']} "
            f"{event['qty']} {event['symbol']} @ {price_text}")
    if event["reason"]:
        text += f" ({event['reason']})"
    return text


def _fill_text(event: Event) -> str:
    return (
        f"FILL {event['symbol']} {event['qty']} @ {event['price']:.2f} buyer={event['buyer']} "
        f"seller={event['seller']} maker=#{event['maker_order_id']} taker=#{event['taker_order_id']}"
    )


def order_event(seq: int, status: str, order_id: int, account: str, symbol: str, side: str,
                kind: str, qty, price, reason: Optional[str] = None) -> dict:
    """status: "accepted", "rejected" or "cancelled"."""
    return Event({
        "type": "order",
        "seq": seq,
        "status": status,
        "order_id": order_id,
        "account": account,
        "symbol": symbol,
        "side": side,
        "kind": kind,
        "qty": qty,
        "price": price,
        "reason": reason,
    })


def fill_event(seq: int, symbol: str, maker_order_id: int, taker_order_id: int,
               buyer: str, seller: str, price: Decimal, qty: int) -> dict:
    return Event({
        "type": "fill",
        "seq": seq,
        "symbol": symbol,
        "maker_order_id": maker_order_id,
        "taker_order_id": taker_order_id,
        "buyer": buyer,
        "seller": seller,
        "price": price,
        "qty": qty,
    })
'''

def main() -> int:
    if ATTEMPT == 1 and STALE_ANCHOR not in TARGET.read_text():
        print(f"attempt 1: anchor {STALE_ANCHOR.strip()!r} not found in {TARGET}; "
              "the edit did not apply, nothing was changed", file=sys.stderr)
        return 1
    return rewrite(TARGET, EXPECTED, NEW, f"lazily built event fields (attempt {ATTEMPT})")


if __name__ == "__main__":
    sys.exit(main())
