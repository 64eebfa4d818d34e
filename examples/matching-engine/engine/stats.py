"""Per-symbol market statistics: last price, total volume, trade count and
the volume-weighted average price over the most recent fills."""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from . import money

VWAP_WINDOW = 32
VWAP_PLACES = Decimal("0.0001")


class MarketStats:
    def __init__(self, window: int = VWAP_WINDOW) -> None:
        self.window = window
        self.recent: list[tuple] = []  # (price, qty) of the last `window` fills
        self.last_price: Optional[Decimal] = None
        self.volume = 0
        self.trades = 0
        self.vwap: Optional[Decimal] = None

    def record(self, price: Decimal, qty: int) -> None:
        self.recent.append((price, qty))
        if len(self.recent) > self.window:
            self.recent = self.recent[-self.window:]
        self.last_price = price
        self.volume += qty
        self.trades += 1
        total = money.ZERO
        shares = 0
        for p, q in self.recent:
            total = money.add(total, money.notional(p, q))
            shares += q
        self.vwap = (total / shares).quantize(VWAP_PLACES)

    def as_dict(self) -> dict:
        return {
            "last_price": self.last_price,
            "volume": self.volume,
            "trades": self.trades,
            "vwap": self.vwap,
        }
