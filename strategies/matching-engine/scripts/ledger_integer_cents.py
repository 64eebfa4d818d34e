"""ledger-integer-cents: rewrite engine/accounts.py to keep cash as integer
cents inside the ledger. Balance.cash and Balance.reserved_cash become ints
(cents); every public Ledger method still takes and returns Decimals, so the
callers need no change. Updates are plain int arithmetic with local checks,
instead of Decimal add/sub with a rounding step, a deepcopy per query and a
full conservation sweep over all accounts on every fill."""

import sys

from edits import engine_file, rewrite

TARGET = engine_file("accounts.py")

EXPECTED = [
    "class Balance:\n    cash: Decimal\n    reserved_cash: Decimal = money.ZERO\n",
    "    def balance(self, account: str) -> Balance:\n        \"\"\"A copy of the account's record, safe to hand out.\"\"\"\n        return copy.deepcopy(self.accounts[account])\n",
    "        before = self.totals()\n",
    "    def settle(self, buyer: str, seller: str, symbol: str, price: Decimal, qty: int,\n               buyer_release: Decimal, seller_release: int) -> None:\n",
]

NEW = '''"""Per-account balances: cash and per-symbol positions.

Cash and positions that back resting orders are *reserved*: a resting buy
reserves price * remaining cash, a resting sell reserves its remaining
quantity. Available = balance - reserved. Nothing may go negative.

Inside the ledger, cash is held as integer cents (``Balance.cash`` and
``Balance.reserved_cash`` are ints). The Ledger's methods take and return
Decimal amounts and convert at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from . import money


class LedgerError(Exception):
    """An update would break a ledger invariant."""


def _cents(amount: Decimal) -> int:
    """A Decimal amount in whole cents -> int cents."""
    scaled = amount.scaleb(2)
    cents = int(scaled)
    if cents != scaled:
        raise LedgerError(f"not a whole number of cents: {amount}")
    return cents


def _decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


@dataclass(slots=True)
class Balance:
    cash: int  # cents
    reserved_cash: int = 0  # cents
    positions: dict = field(default_factory=dict)
    reserved_positions: dict = field(default_factory=dict)


class Ledger:
    def __init__(self) -> None:
        # account id -> Balance record (cash in integer cents)
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
        self.accounts[account] = Balance(cash=_cents(money.to_money(cash)), positions=pos)

    def has_account(self, account: str) -> bool:
        return account in self.accounts

    def balance(self, account: str) -> Balance:
        """A copy of the account's record (cash in cents), safe to hand out."""
        b = self.accounts[account]
        return Balance(b.cash, b.reserved_cash, dict(b.positions), dict(b.reserved_positions))

    def available_cash(self, account: str) -> Decimal:
        b = self.accounts[account]
        return _decimal(b.cash - b.reserved_cash)

    def available_position(self, account: str, symbol: str) -> int:
        b = self.accounts[account]
        return b.positions.get(symbol, 0) - b.reserved_positions.get(symbol, 0)

    def snapshot(self, account: str) -> dict:
        b = self.accounts[account]
        return {
            "cash": _decimal(b.cash),
            "reserved_cash": _decimal(b.reserved_cash),
            "positions": dict(b.positions),
            "reserved_positions": dict(b.reserved_positions),
        }

    def totals(self) -> dict:
        """Total cash and total position per symbol over all accounts."""
        cash = 0
        positions: dict = {}
        for b in self.accounts.values():
            cash += b.cash
            for symbol, qty in b.positions.items():
                positions[symbol] = positions.get(symbol, 0) + qty
        return {"cash": _decimal(cash), "positions": positions}

    # -- reservations -----------------------------------------------------

    def reserve_cash(self, account: str, amount: Decimal) -> None:
        b = self.accounts[account]
        cents = _cents(amount)
        new = b.reserved_cash + cents
        if cents < 0 or new > b.cash:
            raise LedgerError(f"{account}: cannot reserve {amount}, available {_decimal(b.cash - b.reserved_cash)}")
        b.reserved_cash = new

    def release_cash(self, account: str, amount: Decimal) -> None:
        b = self.accounts[account]
        new = b.reserved_cash - _cents(amount)
        if new < 0 or new > b.cash:
            raise LedgerError(f"{account}: cannot release {amount} of {_decimal(b.reserved_cash)} reserved")
        b.reserved_cash = new

    def reserve_position(self, account: str, symbol: str, qty: int) -> None:
        b = self.accounts[account]
        new = b.reserved_positions.get(symbol, 0) + qty
        if qty < 0 or new > b.positions.get(symbol, 0):
            raise LedgerError(f"{account}: cannot reserve {qty} {symbol}")
        b.reserved_positions[symbol] = new

    def release_position(self, account: str, symbol: str, qty: int) -> None:
        b = self.accounts[account]
        new = b.reserved_positions.get(symbol, 0) - qty
        if new < 0:
            raise LedgerError(f"{account}: cannot release {qty} {symbol}")
        b.reserved_positions[symbol] = new

    # -- settlement -------------------------------------------------------

    def settle(self, buyer: str, seller: str, symbol: str, price: Decimal, qty: int,
               buyer_release: Decimal, seller_release: int) -> None:
        """Move qty units of symbol from seller to buyer against price * qty cash.

        ``buyer_release`` is the cash reservation this fill consumes on the
        buyer's side, ``seller_release`` the reserved quantity on the seller's.
        The same ``cost`` leaves one account and enters the other, so totals
        are conserved by construction.
        """
        cost = _cents(price) * qty
        b = self.accounts[buyer]
        s = self.accounts[seller]
        b_cash = b.cash - cost
        b_reserved = b.reserved_cash - _cents(buyer_release)
        if b_cash < 0 or b_reserved < 0 or b_reserved > b_cash:
            raise LedgerError(f"{buyer}: cannot pay {_decimal(cost)}")
        s_held = s.positions.get(symbol, 0) - qty
        s_reserved = s.reserved_positions.get(symbol, 0) - seller_release
        if s_held < 0 or s_reserved < 0 or s_reserved > s_held:
            raise LedgerError(f"{seller}: cannot deliver {qty} {symbol}")
        b.cash = b_cash
        b.reserved_cash = b_reserved
        s.positions[symbol] = s_held
        s.reserved_positions[symbol] = s_reserved
        s.cash += cost
        b.positions[symbol] = b.positions.get(symbol, 0) + qty
'''


def main() -> int:
    return rewrite(TARGET, EXPECTED, NEW, "integer-cent cash, no per-fill copies or sweeps")


if __name__ == "__main__":
    sys.exit(main())
