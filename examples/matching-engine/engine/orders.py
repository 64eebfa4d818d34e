"""The order record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional

from . import money

BUY = "buy"
SELL = "sell"
SIDES = (BUY, SELL)

LIMIT = "limit"
MARKET = "market"
KINDS = (LIMIT, MARKET)


def opposite(side: str) -> str:
    if side == BUY:
        return SELL
    if side == SELL:
        return BUY
    raise ValueError(f"unknown side: {side!r}")


@dataclass
class Order:
    """One order. Validated on construction; raises ValueError when malformed.

    ``remaining`` starts at ``qty`` and is decreased by fills. The order id is
    assigned by the exchange in arrival order, so it doubles as the time
    priority of a resting order.
    """

    order_id: int
    account: str
    symbol: str
    side: str
    kind: str
    qty: int
    price: Optional[Decimal] = None
    remaining: int = field(init=False)
    created_at: str = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.order_id, bool) or not isinstance(self.order_id, int):
            raise ValueError(f"order id must be an int: {self.order_id!r}")
        if self.order_id <= 0:
            raise ValueError(f"order id must be positive: {self.order_id!r}")
        if not isinstance(self.account, str) or not self.account:
            raise ValueError(f"bad account: {self.account!r}")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"bad symbol: {self.symbol!r}")
        if self.side not in SIDES:
            raise ValueError(f"bad side: {self.side!r}")
        if self.kind not in KINDS:
            raise ValueError(f"bad order kind: {self.kind!r}")
        if isinstance(self.qty, bool) or not isinstance(self.qty, int):
            raise ValueError(f"quantity must be an int: {self.qty!r}")
        if self.qty <= 0:
            raise ValueError(f"quantity must be positive: {self.qty!r}")
        if self.kind == LIMIT:
            if self.price is None:
                raise ValueError("a limit order needs a price")
            self.price = money.to_price(self.price)
        elif self.price is not None:
            raise ValueError("a market order has no price")
        self.remaining = self.qty
        self.created_at = datetime.now(timezone.utc).isoformat()

    @property
    def is_buy(self) -> bool:
        return self.side == BUY

    @property
    def is_limit(self) -> bool:
        return self.kind == LIMIT
