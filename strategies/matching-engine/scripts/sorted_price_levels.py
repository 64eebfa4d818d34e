"""sorted-price-levels: replace the re-sorted order lists in engine/book.py
with per-price FIFO levels (dict of deques), a bisect-maintained sorted list of
level keys per side, and an order-id index for O(1) find and cancel."""

import sys

from edits import engine_file, rewrite

TARGET = engine_file("book.py")

# The rewrite replaces the baseline implementation; refuse to run on anything else.
EXPECTED = [
    "        orders.append(order)\n        if order.side == BUY:\n            orders.sort(key=lambda o: (-o.price, o.order_id))",
    "    def find(self, order_id: int) -> Optional[Order]:\n        for orders in (self.bids, self.asks):",
    "    def iter_levels(self, side: str) -> Iterator[tuple]:",
    "    def snapshot(self) -> dict:",
]

NEW = '''"""The order book of one symbol.

Each side keeps its resting orders in price levels: a dict from level key to
a FIFO deque of orders (arrival order = time priority), plus an ascending
list of level keys maintained with bisect. Bid keys are negated prices, so on
both sides the best level is the first key. An order-id index makes find and
cancel O(1) (plus the position inside one level).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from typing import Iterator, Optional

from .orders import BUY, SELL, Order


class OrderBook:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._levels: dict = {BUY: {}, SELL: {}}  # side -> {key: deque[Order]}
        self._keys: dict = {BUY: [], SELL: []}    # side -> ascending level keys
        self._index: dict = {}                    # order id -> resting Order

    def __len__(self) -> int:
        return len(self._index)

    @staticmethod
    def _check_side(side: str) -> None:
        if side != BUY and side != SELL:
            raise ValueError(f"unknown side: {side!r}")

    def add(self, order: Order) -> None:
        """Rest an order on its side of the book."""
        if order.symbol != self.symbol:
            raise ValueError(f"order for {order.symbol} sent to the {self.symbol} book")
        if order.price is None or order.remaining <= 0:
            raise ValueError("only a live limit order can rest in the book")
        side = order.side
        self._check_side(side)
        key = -order.price if side == BUY else order.price
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            level = levels[key] = deque()
            insort(self._keys[side], key)
        level.append(order)
        self._index[order.order_id] = order

    def best(self, side: str) -> Optional[Order]:
        """The resting order with the highest priority on ``side``, or None."""
        keys = self._keys.get(side)
        if keys is None:
            raise ValueError(f"unknown side: {side!r}")
        if not keys:
            return None
        return self._levels[side][keys[0]][0]

    def find(self, order_id: int) -> Optional[Order]:
        return self._index.get(order_id)

    def remove(self, order_id: int) -> Optional[Order]:
        """Take an order out of the book; returns it, or None if absent."""
        order = self._index.pop(order_id, None)
        if order is None:
            return None
        side = order.side
        key = -order.price if side == BUY else order.price
        levels = self._levels[side]
        level = levels[key]
        if level[0] is order:
            level.popleft()
        else:
            for i, resting in enumerate(level):
                if resting is order:
                    del level[i]
                    break
        if not level:
            del levels[key]
            keys = self._keys[side]
            del keys[bisect_left(keys, key)]
        return order

    def iter_levels(self, side: str) -> Iterator[tuple]:
        """Yield (price, total remaining quantity) per level, best level first."""
        self._check_side(side)
        levels = self._levels[side]
        for key in self._keys[side]:
            level = levels[key]
            yield level[0].price, sum(o.remaining for o in level)

    def snapshot(self) -> dict:
        """A copy of the book: for each side, a list of
        (price, [(order_id, remaining), ...]) levels, best level first and
        orders in time priority."""
        result = {}
        for name, side in (("bids", BUY), ("asks", SELL)):
            levels = self._levels[side]
            result[name] = [
                (levels[key][0].price, [(o.order_id, o.remaining) for o in levels[key]])
                for key in self._keys[side]
            ]
        return result
'''


def main() -> int:
    return rewrite(TARGET, EXPECTED, NEW, "price levels with bisect + deques + order index")


if __name__ == "__main__":
    sys.exit(main())
