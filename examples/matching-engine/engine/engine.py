"""The exchange: routes orders through validation, risk, matching and
settlement, and keeps the event log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from . import events, money
from .accounts import Ledger
from .book import OrderBook
from .orders import BUY, LIMIT, MARKET, SELL, Order, opposite
from .risk import RiskChecker
from .stats import MarketStats

logger = logging.getLogger("engine")

DEFAULT_MAX_ORDER_QTY = 10_000


@dataclass
class Result:
    accepted: bool
    order_id: Optional[int] = None
    reason: Optional[str] = None
    fills: list = field(default_factory=list)
    remaining: int = 0


class Exchange:
    def __init__(self, symbols, max_order_qty: int = DEFAULT_MAX_ORDER_QTY) -> None:
        self.books = {symbol: OrderBook(symbol) for symbol in symbols}
        self.market_stats = {symbol: MarketStats() for symbol in symbols}
        self.ledger = Ledger()
        self.risk = RiskChecker(self.ledger, max_order_qty)
        self.events: list = []
        self._last_order_id = 0
        self._seq = 0

    # -- accounts and queries -----------------------------------------------

    def open_account(self, account: str, cash, positions: dict | None = None) -> None:
        self.ledger.open_account(account, cash, positions)

    def balance(self, account: str) -> dict:
        return self.ledger.snapshot(account)

    def book_snapshot(self, symbol: str) -> dict:
        return self.books[symbol].snapshot()

    def stats(self, symbol: str) -> dict:
        return self.market_stats[symbol].as_dict()

    # -- order entry ----------------------------------------------------------

    def submit_limit(self, account: str, symbol: str, side: str, price, qty) -> Result:
        return self._submit(account, symbol, side, LIMIT, price, qty)

    def submit_market(self, account: str, symbol: str, side: str, qty) -> Result:
        return self._submit(account, symbol, side, MARKET, None, qty)

    def _submit(self, account, symbol, side, kind, price, qty) -> Result:
        self._last_order_id += 1
        order_id = self._last_order_id
        logger.debug(f"submit #{order_id}: {account} {kind} {side} {qty} {symbol} @ {price}")
        if symbol not in self.books or not self.ledger.has_account(account):
            return self._reject(order_id, account, symbol, side, kind, qty, price, "invalid")
        try:
            order = Order(order_id=order_id, account=account, symbol=symbol, side=side,
                          kind=kind, qty=qty, price=price)
        except ValueError as exc:
            logger.info(f"rejecting #{order_id}: {exc}")
            return self._reject(order_id, account, symbol, side, kind, qty, price, "invalid")
        book = self.books[symbol]
        logger.debug(f"risk check for #{order_id} against balance {self.ledger.snapshot(account)}")
        reason = self.risk.check(order, book)
        if reason is not None:
            logger.info(f"risk rejected {order!r}: {reason}")
            return self._reject(order_id, account, symbol, side, kind, qty, order.price, reason)

        if kind == LIMIT:
            self._reserve(order)
        self._emit(events.order_event(self._next_seq(), "accepted", order_id, account, symbol,
                                      side, kind, qty, order.price))
        fills = self._match(order, book)
        if order.remaining > 0 and kind == LIMIT:
            book.add(order)
        logger.info(f"accepted {order!r}: {len(fills)} fills, book now {len(book)} orders")
        return Result(accepted=True, order_id=order_id, fills=fills, remaining=order.remaining)

    def cancel(self, account: str, order_id: int) -> Result:
        book = None
        order = None
        for candidate in self.books.values():
            order = candidate.find(order_id)
            if order is not None:
                book = candidate
                break
        if order is None or order.account != account:
            return Result(accepted=False, order_id=order_id, reason="unknown_order")
        book.remove(order_id)
        self._release(order)
        self._emit(events.order_event(self._next_seq(), "cancelled", order_id, account,
                                      order.symbol, order.side, order.kind, order.remaining,
                                      order.price))
        return Result(accepted=True, order_id=order_id, remaining=order.remaining)

    # -- internals ------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _emit(self, event: dict) -> None:
        self.events.append(event)

    def _reject(self, order_id, account, symbol, side, kind, qty, price, reason) -> Result:
        self._emit(events.order_event(self._next_seq(), "rejected", order_id, account, symbol,
                                      side, kind, qty, price, reason))
        return Result(accepted=False, order_id=order_id, reason=reason)

    def _reserve(self, order: Order) -> None:
        if order.side == BUY:
            self.ledger.reserve_cash(order.account, money.notional(order.price, order.qty))
        else:
            self.ledger.reserve_position(order.account, order.symbol, order.qty)

    def _release(self, order: Order) -> None:
        """Give back what a resting order still holds reserved."""
        if order.side == BUY:
            self.ledger.release_cash(order.account, money.notional(order.price, order.remaining))
        else:
            self.ledger.release_position(order.account, order.symbol, order.remaining)

    def _match(self, order: Order, book: OrderBook) -> list:
        """Trade an incoming order against the opposite side of the book."""
        fills = []
        while order.remaining > 0:
            maker = book.best(opposite(order.side))
            if maker is None:
                break
            if order.kind == LIMIT:
                if order.side == BUY and maker.price > order.price:
                    break
                if order.side == SELL and maker.price < order.price:
                    break
            qty = min(order.remaining, maker.remaining)
            fills.append(self._fill(order, maker, qty))
            if maker.remaining == 0:
                book.remove(maker.order_id)
        return fills

    def _fill(self, taker: Order, maker: Order, qty: int) -> dict:
        """Settle one trade at the maker's price."""
        price = maker.price
        if taker.side == BUY:
            buyer, seller = taker, maker
        else:
            buyer, seller = maker, taker
        # A limit buyer reserved its own price per unit; a market buyer reserved nothing.
        buyer_release = money.notional(buyer.price, qty) if buyer.kind == LIMIT else money.ZERO
        seller_release = qty if seller.kind == LIMIT else 0
        self.ledger.settle(buyer.account, seller.account, taker.symbol, price, qty,
                           buyer_release, seller_release)
        taker.remaining -= qty
        maker.remaining -= qty
        self.market_stats[taker.symbol].record(price, qty)
        event = events.fill_event(self._next_seq(), taker.symbol, maker.order_id, taker.order_id,
                                  buyer.account, seller.account, price, qty)
        self._emit(event)
        logger.debug(f"fill: {event['text']}")
        return event
