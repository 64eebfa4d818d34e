"""Invariants that must hold after every command of a random stream,
checked on the engine alone."""

from decimal import Decimal

import pytest

from .streams import ACCOUNTS, SYMBOLS, apply_engine, engine_balance, generate, new_pair

SEEDS = range(100, 106)


def totals(exchange):
    cash = Decimal("0")
    positions = {s: 0 for s in SYMBOLS}
    for account in ACCOUNTS:
        b = engine_balance(exchange, account)
        cash += b["cash"]
        for s in SYMBOLS:
            positions[s] += b["positions"][s]
    return cash, positions


def resting_orders(exchange):
    """order id -> (symbol, side, price, remaining) for every resting order."""
    out = {}
    for symbol in SYMBOLS:
        snap = exchange.book_snapshot(symbol)
        for name, side in (("bids", "buy"), ("asks", "sell")):
            for price, orders in snap[name]:
                for order_id, remaining in orders:
                    out[order_id] = (symbol, side, price, remaining)
    return out


def owners(commands):
    """order id -> account, from the stream (every submit takes the next id)."""
    result = {}
    next_id = 0
    for command in commands:
        if command[0] != "cancel":
            next_id += 1
            result[next_id] = command[1]
    return result


@pytest.mark.parametrize("seed", SEEDS)
def test_balances_are_conserved_and_never_negative(seed):
    exchange, _ = new_pair()
    start = totals(exchange)
    for command in generate(seed):
        apply_engine(exchange, command)
        assert totals(exchange) == start, command
        for account in ACCOUNTS:
            b = engine_balance(exchange, account)
            assert 0 <= b["reserved_cash"] <= b["cash"], (account, b)
            for s in SYMBOLS:
                assert 0 <= b["reserved_positions"][s] <= b["positions"][s], (account, s, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_reservations_equal_what_resting_orders_hold(seed):
    exchange, _ = new_pair()
    commands = generate(seed)
    owner = owners(commands)
    for command in commands:
        apply_engine(exchange, command)
        want_cash = {a: Decimal("0") for a in ACCOUNTS}
        want_pos = {a: {s: 0 for s in SYMBOLS} for a in ACCOUNTS}
        for order_id, (symbol, side, price, remaining) in resting_orders(exchange).items():
            if side == "buy":
                want_cash[owner[order_id]] += price * remaining
            else:
                want_pos[owner[order_id]][symbol] += remaining
        for account in ACCOUNTS:
            b = engine_balance(exchange, account)
            assert b["reserved_cash"] == want_cash[account], (command, account)
            assert b["reserved_positions"] == want_pos[account], (command, account)


@pytest.mark.parametrize("seed", SEEDS)
def test_fills_take_the_book_in_price_time_order(seed):
    exchange, _ = new_pair()
    for command in generate(seed):
        if command[0] == "cancel":
            apply_engine(exchange, command)
            continue
        symbol, side = command[2], command[3]
        before = exchange.book_snapshot(symbol)["asks" if side == "buy" else "bids"]
        queue = [(price, order_id, remaining) for price, orders in before for order_id, remaining in orders]
        accepted, _, _, fills = apply_engine(exchange, command)
        if not fills:
            continue
        # the makers are exactly the head of the opposite side, in priority order;
        # every one but the last is taken completely
        assert len(fills) <= len(queue)
        for i, fill in enumerate(fills):
            price, order_id, remaining = queue[i]
            assert (fill["maker_order_id"], fill["price"]) == (order_id, price)
            if i < len(fills) - 1:
                assert fill["qty"] == remaining
            else:
                assert fill["qty"] <= remaining
        if command[0] == "limit":
            limit = Decimal(command[4])
            for fill in fills:
                assert fill["price"] <= limit if side == "buy" else fill["price"] >= limit


@pytest.mark.parametrize("seed", SEEDS)
def test_book_is_never_crossed_and_levels_are_ordered(seed):
    exchange, _ = new_pair()
    for command in generate(seed):
        apply_engine(exchange, command)
        for symbol in SYMBOLS:
            snap = exchange.book_snapshot(symbol)
            bid_prices = [p for p, _ in snap["bids"]]
            ask_prices = [p for p, _ in snap["asks"]]
            assert bid_prices == sorted(bid_prices, reverse=True)
            assert ask_prices == sorted(ask_prices)
            assert len(set(bid_prices)) == len(bid_prices) and len(set(ask_prices)) == len(ask_prices)
            for _, orders in snap["bids"] + snap["asks"]:
                ids = [order_id for order_id, _ in orders]
                assert ids == sorted(ids) and all(rem > 0 for _, rem in orders)
            if bid_prices and ask_prices:
                assert bid_prices[0] < ask_prices[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_cancel_removes_exactly_the_cancelled_order(seed):
    exchange, _ = new_pair()
    for command in generate(seed):
        if command[0] != "cancel":
            apply_engine(exchange, command)
            continue
        before = resting_orders(exchange)
        accepted, order_id, reason, fills = apply_engine(exchange, command)
        after = resting_orders(exchange)
        assert fills == []
        if accepted:
            assert order_id in before
            expected = dict(before)
            del expected[order_id]
            assert after == expected
        else:
            assert reason == "unknown_order"
            assert after == before
