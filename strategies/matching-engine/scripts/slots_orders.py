"""slots-orders: replace the validated @dataclass Order in engine/orders.py
with a plain __slots__ class. Same fields, same validation and the same
ValueErrors, but cheaper checks (exact-type fast paths) and no ISO timestamp
formatting per order: the creation time is stored as a float and formatted
only when ``created_at`` is read."""

import sys

from edits import engine_file

TARGET = engine_file("orders.py")

OLD_IMPORTS = '''from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional
'''

NEW_IMPORTS = '''import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Optional
'''

OLD_START = "@dataclass\nclass Order:\n"
OLD_END = '''        self.remaining = self.qty
        self.created_at = datetime.now(timezone.utc).isoformat()
'''

NEW_CLASS = '''class Order:
    """One order. Validated on construction; raises ValueError when malformed.

    ``remaining`` starts at ``qty`` and is decreased by fills. The order id is
    assigned by the exchange in arrival order, so it doubles as the time
    priority of a resting order.
    """

    __slots__ = ("order_id", "account", "symbol", "side", "kind", "qty", "price",
                 "remaining", "created")

    def __init__(self, order_id: int, account: str, symbol: str, side: str, kind: str,
                 qty: int, price: Optional[Decimal] = None) -> None:
        if order_id.__class__ is not int and (isinstance(order_id, bool) or not isinstance(order_id, int)):
            raise ValueError(f"order id must be an int: {order_id!r}")
        if order_id <= 0:
            raise ValueError(f"order id must be positive: {order_id!r}")
        if account.__class__ is not str and not isinstance(account, str) or not account:
            raise ValueError(f"bad account: {account!r}")
        if symbol.__class__ is not str and not isinstance(symbol, str) or not symbol:
            raise ValueError(f"bad symbol: {symbol!r}")
        if side != BUY and side != SELL:
            raise ValueError(f"bad side: {side!r}")
        if qty.__class__ is not int and (isinstance(qty, bool) or not isinstance(qty, int)):
            raise ValueError(f"quantity must be an int: {qty!r}")
        if qty <= 0:
            raise ValueError(f"quantity must be positive: {qty!r}")
        if kind == LIMIT:
            if price is None:
                raise ValueError("a limit order needs a price")
            price = money.to_price(price)
        elif kind == MARKET:
            if price is not None:
                raise ValueError("a market order has no price")
        else:
            raise ValueError(f"bad order kind: {kind!r}")
        self.order_id = order_id
        self.account = account
        self.symbol = symbol
        self.side = side
        self.kind = kind
        self.qty = qty
        self.price = price
        self.remaining = qty
        self.created = time.time()

    @property
    def created_at(self) -> str:
        return datetime.fromtimestamp(self.created, timezone.utc).isoformat()

    def __repr__(self) -> str:
        return (f"Order(order_id={self.order_id!r}, account={self.account!r}, symbol={self.symbol!r}, "
                f"side={self.side!r}, kind={self.kind!r}, qty={self.qty!r}, price={self.price!r}, "
                f"remaining={self.remaining!r})")
'''


def main() -> int:
    text = TARGET.read_text()
    for snippet in (OLD_IMPORTS, OLD_START, OLD_END):
        if text.count(snippet) != 1:
            print(f"{TARGET}: expected baseline text not found exactly once:\n{snippet}", file=sys.stderr)
            return 1
    text = text.replace(OLD_IMPORTS, NEW_IMPORTS)
    start = text.index(OLD_START)
    end = text.index(OLD_END) + len(OLD_END)
    text = text[:start] + NEW_CLASS + text[end:]
    TARGET.write_text(text)
    print(f"rewrote class Order in {TARGET} with __slots__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
