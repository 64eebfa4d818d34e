"""The engine against the reference model, command by command."""

import pytest

from .streams import ACCOUNTS, SYMBOLS, apply_engine, apply_reference, engine_balance, generate, new_pair
from .reference import ReferenceExchange

SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_results_books_and_balances_match_reference(seed):
    exchange, reference = new_pair()
    for step, command in enumerate(generate(seed)):
        got = apply_engine(exchange, command)
        want = apply_reference(reference, command)
        assert got == want, f"step {step}: {command}"
        if step % 10 == 0:
            for symbol in SYMBOLS:
                assert exchange.book_snapshot(symbol) == reference.book(symbol), f"step {step}"
    for symbol in SYMBOLS:
        assert exchange.book_snapshot(symbol) == reference.book(symbol)
    for account in ACCOUNTS:
        assert engine_balance(exchange, account) == reference.balance(account), account


@pytest.mark.parametrize("seed", SEEDS)
def test_stats_match_reference(seed):
    exchange, reference = new_pair()
    for command in generate(seed):
        apply_engine(exchange, command)
        apply_reference(reference, command)
    from engine.stats import VWAP_WINDOW

    for symbol in SYMBOLS:
        fills = [f for f in reference.fills if f["symbol"] == symbol]
        stats = exchange.stats(symbol)
        assert stats["trades"] == len(fills)
        assert stats["volume"] == sum(f["qty"] for f in fills)
        assert stats["vwap"] == reference.vwap(symbol, VWAP_WINDOW)
        if fills:
            assert stats["last_price"] == fills[-1]["price"]


def test_reference_sanity():
    ref = ReferenceExchange(["S"], max_order_qty=10)
    ref.open_account("a", "100.00", {"S": 5})
    ref.open_account("b", "100.00", {"S": 5})
    assert ref.submit("a", "S", "sell", "limit", "2.00", 3)[0]
    accepted, _, _, fills = ref.submit("b", "S", "buy", "limit", "3.00", 2)
    assert accepted and [(f["price"], f["qty"]) for f in fills] == [(ref.book("S")["asks"][0][0], 2)]
    assert ref.balance("a")["cash"] == 104
    assert ref.balance("b")["positions"]["S"] == 7
