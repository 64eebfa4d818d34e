"""heap-price-levels: replace the re-sorted order lists in engine/book.py with
per-price FIFO levels (dict of deques), a binary heap of level keys per side
with lazy deletion of emptied levels, and an order-id index for O(1) cancel."""

import sys

from edits import engine_file, rewrite

TARGET = engine_file("book.py")

EXPECTED = [
    "        orders.append(order)\n        if order.side == BUY:\n            orders.sort(key=lambda o: (-o.price, o.order_id))",
    "    def remove(self, order_id: int) -> Optional[Order]:\n        \"\"\"Take an order out of the book; returns it, or None if absent.\"\"\"\n        for orders in (self.bids, self.asks):",
    "    def iter_levels(self, side: str) -> Iterator[tuple]:",
    "    def snapshot(self) -> dict:",
]

NEW = '''"""The order book of one symbol.

Each side keeps a dict from level key to a FIFO deque of resting orders
(arrival order = time priority) and a min-heap of level keys. Bid keys are
negated prices, so on both sides the best level is the heap's top. A level
that empties is dropped from the dict at once and from the heap lazily, when
it reaches the top. An order-id index makes find and cancel O(1) (plus the
position inside one level).
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import Iterator, Optional

from .orders import BUY, SELL, Order


class OrderBook:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._levels: dict = {BUY: {}, SELL: {}}     # side -> {key: deque[Order]}
        self._heaps: dict = {BUY: [], SELL: []}      # side -> heap of level keys
        self._in_heap: dict = {BUY: set(), SELL: set()}
        self._index: dict = {}                       # order id -> resting Order

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
            in_heap = self._in_heap[side]
            if key not in in_heap:
                in_heap.add(key)
                heappush(self._heaps[side], key)
        level.append(order)
        self._index[order.order_id] = order

    def best(self, side: str) -> Optional[Order]:
        """The resting order with the highest priority on ``side``, or None."""
        heap = self._heaps.get(side)
        if heap is None:
            raise ValueError(f"unknown side: {side!r}")
        levels = self._levels[side]
        while heap:
            level = levels.get(heap[0])
            if level is not None:
                return level[0]
            self._in_heap[side].discard(heappop(heap))
        return None

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
            del levels[key]  # its heap entry goes when it surfaces
        return order

    def iter_levels(self, side: str) -> Iterator[tuple]:
        """Yield (price, total remaining quantity) per level, best level first."""
        self._check_side(side)
        levels = self._levels[side]
        for key in sorted(levels):
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
                for key in sorted(levels)
            ]
        return result
'''


def main() -> int:
    return rewrite(TARGET, EXPECTED, NEW, "price levels on a heap with lazy deletion + order index")


if __name__ == "__main__":
    sys.exit(main())
