"""Event records: one per accepted, rejected or cancelled order and per fill.

An event is a dict. Every event carries a sequence number, a UTC timestamp,
a human-readable ``text`` and a ``wire`` form (sorted-key JSON with decimals
as strings) ready to publish.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

from . import money


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _finish(event: dict) -> dict:
    event["wire"] = json.dumps(
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in event.items()},
        sort_keys=True,
    )
    return event


def order_event(seq: int, status: str, order_id: int, account: str, symbol: str, side: str,
                kind: str, qty, price, reason: Optional[str] = None) -> dict:
    """status: "accepted", "rejected" or "cancelled"."""
    price_text = f"{price:.2f}" if isinstance(price, Decimal) else "MKT"
    event = {
        "type": "order",
        "seq": seq,
        "ts": _now(),
        "status": status,
        "order_id": order_id,
        "account": account,
        "symbol": symbol,
        "side": side,
        "kind": kind,
        "qty": qty,
        "price": price,
        "reason": reason,
    }
    text = f"{status.upper()} #{order_id} {account} {side} {qty} {symbol} @ {price_text}"
    if reason:
        text += f" ({reason})"
    event["text"] = text
    return _finish(event)


def fill_event(seq: int, symbol: str, maker_order_id: int, taker_order_id: int,
               buyer: str, seller: str, price: Decimal, qty: int) -> dict:
    event = {
        "type": "fill",
        "seq": seq,
        "ts": _now(),
        "symbol": symbol,
        "maker_order_id": maker_order_id,
        "taker_order_id": taker_order_id,
        "buyer": buyer,
        "seller": seller,
        "price": price,
        "qty": qty,
        "notional": money.notional(price, qty),
    }
    event["text"] = (
        f"FILL {symbol} {qty} @ {price:.2f} buyer={buyer} seller={seller} "
        f"maker=#{maker_order_id} taker=#{taker_order_id}"
    )
    return _finish(event)
