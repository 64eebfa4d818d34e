"""Per-account balances: cash and per-symbol positions.

Cash and positions that back resting orders are *reserved*: a resting buy
reserves price * remaining cash, a resting sell reserves its remaining
quantity. Available = balance - reserved. Nothing may go negative.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from . import money


class LedgerError(Exception):
    """An update would break a ledger invariant."""


@dataclass
class Balance:
    cash: Decimal
    reserved_cash: Decimal = money.ZERO
    positions: dict = field(default_factory=dict)
    reserved_positions: dict = field(default_factory=dict)


class Ledger:
    def __init__(self) -> None:
        # account id -> Balance record
        self.accounts: dict[str, Balance] = {}

    # -- setup and queries ------------------------------------------------

    def open_account(self, account: str, cash, positions: dict | None = None) -> None:
        if account in self.accounts:
            raise LedgerError(f"account exists: {account}")
        pos = {}
        for symbol, qty in (positions or {}).items():
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
                raise LedgerError(f"bad position {symbol}={qty!r}")
            pos[symbol] = qty
        self.accounts[account] = Balance(cash=money.to_money(cash), positions=pos)

    def has_account(self, account: str) -> bool:
        return account in self.accounts

    def balance(self, account: str) -> Balance:
        """A copy of the account's record, safe to hand out."""
        return copy.deepcopy(self.accounts[account])

    def available_cash(self, account: str) -> Decimal:
        b = self.balance(account)
        return money.sub(b.cash, b.reserved_cash)

    def available_position(self, account: str, symbol: str) -> int:
        b = self.balance(account)
        return b.positions.get(symbol, 0) - b.reserved_positions.get(symbol, 0)

    def snapshot(self, account: str) -> dict:
        b = self.balance(account)
        return {
            "cash": b.cash,
            "reserved_cash": b.reserved_cash,
            "positions": dict(b.positions),
            "reserved_positions": dict(b.reserved_positions),
        }

    def totals(self) -> dict:
        """Total cash and total position per symbol over all accounts."""
        cash = money.ZERO
        positions: dict = {}
        for b in self.accounts.values():
            cash = money.add(cash, b.cash)
            for symbol, qty in b.positions.items():
                positions[symbol] = positions.get(symbol, 0) + qty
        return {"cash": cash, "positions": positions}

    # -- reservations -----------------------------------------------------

    def reserve_cash(self, account: str, amount: Decimal) -> None:
        b = self.accounts[account]
        new = money.add(b.reserved_cash, amount)
        if new > b.cash:
            raise LedgerError(f"{account}: cannot reserve {amount}, available {money.sub(b.cash, b.reserved_cash)}")
        b.reserved_cash = new
        self._check(account)

    def release_cash(self, account: str, amount: Decimal) -> None:
        b = self.accounts[account]
        b.reserved_cash = money.sub(b.reserved_cash, amount)
        self._check(account)

    def reserve_position(self, account: str, symbol: str, qty: int) -> None:
        b = self.accounts[account]
        new = b.reserved_positions.get(symbol, 0) + qty
        if new > b.positions.get(symbol, 0):
            raise LedgerError(f"{account}: cannot reserve {qty} {symbol}")
        b.reserved_positions[symbol] = new
        self._check(account)

    def release_position(self, account: str, symbol: str, qty: int) -> None:
        b = self.accounts[account]
        b.reserved_positions[symbol] = b.reserved_positions.get(symbol, 0) - qty
        self._check(account)

    # -- settlement -------------------------------------------------------

    def settle(self, buyer: str, seller: str, symbol: str, price: Decimal, qty: int,
               buyer_release: Decimal, seller_release: int) -> None:
        """Move qty units of symbol from seller to buyer against price * qty cash.

        ``buyer_release`` is the cash reservation this fill consumes on the
        buyer's side, ``seller_release`` the reserved quantity on the seller's.
        """
        before = self.totals()
        cost = money.notional(price, qty)
        b = self.accounts[buyer]
        b.cash = money.sub(b.cash, cost)
        b.reserved_cash = money.sub(b.reserved_cash, buyer_release)
        b.positions[symbol] = b.positions.get(symbol, 0) + qty
        s = self.accounts[seller]
        s.cash = money.add(s.cash, cost)
        s.positions[symbol] = s.positions.get(symbol, 0) - qty
        s.reserved_positions[symbol] = s.reserved_positions.get(symbol, 0) - seller_release
        self._check(buyer)
        self._check(seller)
        after = self.totals()
        if before != after:
            raise LedgerError(f"settlement changed totals: {before} -> {after}")

    def _check(self, account: str) -> None:
        b = self.accounts[account]
        if b.cash < 0 or b.reserved_cash < 0 or b.reserved_cash > b.cash:
            raise LedgerError(f"{account}: bad cash state {b.cash} / reserved {b.reserved_cash}")
        for symbol, held in b.positions.items():
            if held < 0:
                raise LedgerError(f"{account}: negative {symbol} position {held}")
        for symbol, reserved in b.reserved_positions.items():
            held = b.positions.get(symbol, 0)
            if reserved < 0 or reserved > held:
                raise LedgerError(f"{account}: bad {symbol} state {held} / reserved {reserved}")
