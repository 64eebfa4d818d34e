"""The order book of one symbol.

Each side is a list of resting orders kept in priority order: bids by
highest price first, asks by lowest price first, and within one price by
arrival (lower order id first).
"""

from __future__ import annotations

from typing import Iterator, Optional

from .orders import BUY, SELL, Order


class OrderBook:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: list[Order] = []
        self.asks: list[Order] = []

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def _side(self, side: str) -> list[Order]:
        if side == BUY:
            return self.bids
        if side == SELL:
            return self.asks
        raise ValueError(f"unknown side: {side!r}")

    def add(self, order: Order) -> None:
        """Rest an order on its side of the book."""
        if order.symbol != self.symbol:
            raise ValueError(f"order for {order.symbol} sent to the {self.symbol} book")
        if order.price is None or order.remaining <= 0:
            raise ValueError("only a live limit order can rest in the book")
        orders = self._side(order.side)
        orders.append(order)
        if order.side == BUY:
            orders.sort(key=lambda o: (-o.price, o.order_id))
        else:
            orders.sort(key=lambda o: (o.price, o.order_id))

    def best(self, side: str) -> Optional[Order]:
        """The resting order with the highest priority on ``side``, or None."""
        orders = self._side(side)
        if not orders:
            return None
        return orders[0]

    def find(self, order_id: int) -> Optional[Order]:
        for orders in (self.bids, self.asks):
            for order in orders:
                if order.order_id == order_id:
                    return order
        return None

    def remove(self, order_id: int) -> Optional[Order]:
        """Take an order out of the book; returns it, or None if absent."""
        for orders in (self.bids, self.asks):
            for i, order in enumerate(orders):
                if order.order_id == order_id:
                    del orders[i]
                    return order
        return None

    def iter_levels(self, side: str) -> Iterator[tuple]:
        """Yield (price, total remaining quantity) per level, best level first."""
        price = None
        total = 0
        for order in self._side(side):
            if order.price != price:
                if price is not None:
                    yield price, total
                price = order.price
                total = 0
            total += order.remaining
        if price is not None:
            yield price, total

    def snapshot(self) -> dict:
        """A copy of the book: for each side, a list of
        (price, [(order_id, remaining), ...]) levels, best level first and
        orders in time priority."""
        result = {}
        for name, orders in (("bids", self.bids), ("asks", self.asks)):
            levels: list = []
            for order in orders:
                if not levels or levels[-1][0] != order.price:
                    levels.append((order.price, []))
                levels[-1][1].append((order.order_id, order.remaining))
            result[name] = levels
        return result
