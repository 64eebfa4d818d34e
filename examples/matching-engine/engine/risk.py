"""Pre-trade risk checks.

An order is rejected, with the first reason that applies, when
  * its quantity exceeds the per-order maximum            -> "max_qty"
  * a buy costs more than the account's available cash     -> "insufficient_cash"
    (limit: price * qty; market: the cost of sweeping the asks for qty,
    as far as the book has liquidity)
  * a sell exceeds the account's available position       -> "insufficient_position"
"""

from __future__ import annotations

from decimal import Decimal
from typing import Optional

from . import money
from .accounts import Ledger
from .book import OrderBook
from .orders import BUY, Order


class RiskChecker:
    def __init__(self, ledger: Ledger, max_order_qty: int) -> None:
        self.ledger = ledger
        self.max_order_qty = max_order_qty

    def check(self, order: Order, book: OrderBook) -> Optional[str]:
        """None when the order may trade, else the reason to reject it."""
        checks = [self._check_size, self._check_funds]
        reasons = []
        for check in checks:
            reason = check(order, book)
            if reason is not None:
                reasons.append(reason)
        if reasons:
            return reasons[0]
        return None

    def _check_size(self, order: Order, book: OrderBook) -> Optional[str]:
        if order.qty > self.max_order_qty:
            return "max_qty"
        return None

    def _check_funds(self, order: Order, book: OrderBook) -> Optional[str]:
        if order.side == BUY:
            if order.price is not None:
                cost = money.notional(order.price, order.qty)
            else:
                cost = self.market_buy_cost(order.qty, book)
            if cost > self.ledger.available_cash(order.account):
                return "insufficient_cash"
        else:
            if order.qty > self.ledger.available_position(order.account, order.symbol):
                return "insufficient_position"
        return None

    def market_buy_cost(self, qty: int, book: OrderBook) -> Decimal:
        """What a market buy of qty would pay, sweeping the asks in priority
        order; only the quantity the book can fill is counted."""
        snapshot = book.snapshot()
        cost = money.ZERO
        remaining = qty
        for price, orders in snapshot["asks"]:
            for _order_id, available in orders:
                if remaining == 0:
                    return cost
                take = min(available, remaining)
                cost = money.add(cost, money.notional(price, take))
                remaining -= take
        return cost
