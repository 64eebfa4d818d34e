"""Seeded random command streams and helpers shared by the tests."""

from __future__ import annotations

import random

from engine import Exchange

from .reference import ReferenceExchange

SYMBOLS = ("ABC", "XYZ")
ACCOUNTS = ("alice", "bob", "carol", "dave", "erin", "frank")
MAX_ORDER_QTY = 40


def start_cash(account):
    # uneven and fairly tight, so the risk check has work to do
    return f"{150 + 120 * ACCOUNTS.index(account)}.00"


def start_positions(account):
    return {"ABC": 10 + 8 * ACCOUNTS.index(account), "XYZ": 30}


def new_pair():
    """A fresh engine and reference with the same accounts."""
    exchange = Exchange(SYMBOLS, max_order_qty=MAX_ORDER_QTY)
    reference = ReferenceExchange(SYMBOLS, max_order_qty=MAX_ORDER_QTY)
    for account in ACCOUNTS:
        exchange.open_account(account, start_cash(account), start_positions(account))
        reference.open_account(account, start_cash(account), start_positions(account))
    return exchange, reference


def generate(seed, n=400):
    """Commands: ("limit", acct, sym, side, price, qty), ("market", acct, sym,
    side, qty), ("cancel", acct, order_id). Prices sit on a few ticks around
    10.00 so levels hold several orders and orders often cross."""
    rng = random.Random(seed)
    commands = []
    submitted = 0
    own_limits = {account: [] for account in ACCOUNTS}
    for _ in range(n):
        r = rng.random()
        account = rng.choice(ACCOUNTS)
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(("buy", "sell"))
        if r < 0.55:
            ticks = 1000 + rng.randint(-6, 6)
            price = f"{ticks // 100}.{ticks % 100:02d}"
            qty = rng.randint(1, 12)
            roll = rng.random()
            if roll < 0.03:
                qty = MAX_ORDER_QTY + rng.randint(1, 5)
            elif roll < 0.05:
                price = rng.choice(("10.001", "-1.00", "0", "abc", "nan"))
            elif roll < 0.06:
                qty = rng.choice((0, -3))
            elif roll < 0.09:
                qty = rng.randint(20, MAX_ORDER_QTY)  # often more than the account can afford
            submitted += 1
            own_limits[account].append(submitted)
            commands.append(("limit", account, symbol, side, price, qty))
        elif r < 0.70:
            submitted += 1
            commands.append(("market", account, symbol, side, rng.randint(1, 25)))
        elif submitted:
            if own_limits[account] and rng.random() < 0.8:
                order_id = rng.choice(own_limits[account][-8:])  # one of its recent orders
            else:
                order_id = rng.randint(1, submitted + 2)  # anyone's, or an id never used
            commands.append(("cancel", account, order_id))
    return commands


def apply_engine(exchange, command):
    """Run one command on the engine; returns (accepted, order_id, reason, fills)."""
    op = command[0]
    if op == "limit":
        r = exchange.submit_limit(*command[1:])
    elif op == "market":
        r = exchange.submit_market(*command[1:])
    else:
        r = exchange.cancel(*command[1:])
    fills = [
        {k: f[k] for k in ("symbol", "maker_order_id", "taker_order_id", "buyer", "seller", "price", "qty")}
        for f in r.fills
    ]
    return (r.accepted, r.order_id, r.reason, fills)


def apply_reference(reference, command):
    op = command[0]
    if op == "limit":
        _, account, symbol, side, price, qty = command
        return reference.submit(account, symbol, side, "limit", price, qty)
    if op == "market":
        _, account, symbol, side, qty = command
        return reference.submit(account, symbol, side, "market", None, qty)
    _, account, order_id = command
    return reference.cancel(account, order_id)


def engine_balance(exchange, account):
    """The engine's view of an account, with every symbol present."""
    b = exchange.balance(account)
    return {
        "cash": b["cash"],
        "reserved_cash": b["reserved_cash"],
        "positions": {s: b["positions"].get(s, 0) for s in SYMBOLS},
        "reserved_positions": {s: b["reserved_positions"].get(s, 0) for s in SYMBOLS},
    }
