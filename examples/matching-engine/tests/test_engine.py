"""Direct unit tests of the exchange."""

from decimal import Decimal

import pytest

from engine import Exchange

D = Decimal


@pytest.fixture
def ex():
    e = Exchange(["ABC"], max_order_qty=100)
    e.open_account("a", "1000.00", {"ABC": 50})
    e.open_account("b", "1000.00", {"ABC": 50})
    e.open_account("poor", "10.00", {})
    return e


def test_orders_rest_in_price_time_order(ex):
    ex.submit_limit("a", "ABC", "sell", "10.10", 5)  # 1
    ex.submit_limit("a", "ABC", "sell", "10.00", 3)  # 2
    ex.submit_limit("b", "ABC", "sell", "10.00", 4)  # 3
    ex.submit_limit("b", "ABC", "buy", "9.50", 2)    # 4
    ex.submit_limit("a", "ABC", "buy", "9.90", 1)    # 5
    snap = ex.book_snapshot("ABC")
    assert snap["asks"] == [(D("10.00"), [(2, 3), (3, 4)]), (D("10.10"), [(1, 5)])]
    assert snap["bids"] == [(D("9.90"), [(5, 1)]), (D("9.50"), [(4, 2)])]


def test_crossing_order_trades_at_maker_prices_in_priority(ex):
    ex.submit_limit("a", "ABC", "sell", "10.10", 5)  # 1
    ex.submit_limit("a", "ABC", "sell", "10.00", 3)  # 2
    ex.submit_limit("a", "ABC", "sell", "10.00", 4)  # 3
    r = ex.submit_limit("b", "ABC", "buy", "10.10", 9)
    assert r.accepted and r.remaining == 0
    assert [(f["maker_order_id"], f["price"], f["qty"]) for f in r.fills] == [
        (2, D("10.00"), 3), (3, D("10.00"), 4), (1, D("10.10"), 2)]
    assert ex.book_snapshot("ABC")["asks"] == [(D("10.10"), [(1, 3)])]
    # b paid 70.00 + 20.20, less than the 90.90 its limit reserved: nothing stays reserved
    assert ex.balance("b")["cash"] == D("909.80")
    assert ex.balance("b")["reserved_cash"] == 0
    assert ex.balance("b")["positions"]["ABC"] == 59
    assert ex.balance("a")["cash"] == D("1090.20")
    assert ex.balance("a")["positions"]["ABC"] == 41
    assert ex.balance("a")["reserved_positions"]["ABC"] == 3


def test_partial_fill_rests_the_remainder_with_its_reservation(ex):
    ex.submit_limit("a", "ABC", "sell", "10.00", 2)
    r = ex.submit_limit("b", "ABC", "buy", "10.50", 5)
    assert r.remaining == 3
    assert ex.book_snapshot("ABC")["bids"] == [(D("10.50"), [(r.order_id, 3)])]
    assert ex.balance("b")["reserved_cash"] == D("31.50")
    assert ex.balance("b")["cash"] == D("980.00")


def test_cancel_after_partial_fill_releases_only_the_remainder(ex):
    ex.submit_limit("a", "ABC", "sell", "10.00", 2)
    r = ex.submit_limit("b", "ABC", "buy", "10.00", 5)
    c = ex.cancel("b", r.order_id)
    assert c.accepted and c.remaining == 3
    assert ex.balance("b")["reserved_cash"] == 0
    assert ex.balance("b")["cash"] == D("980.00")
    s = ex.submit_limit("a", "ABC", "sell", "12.00", 10)
    ex.submit_limit("b", "ABC", "buy", "11.00", 1)
    ex.cancel("a", s.order_id)
    assert ex.balance("a")["reserved_positions"]["ABC"] == 0
    assert ex.book_snapshot("ABC") == {"bids": [(D("11.00"), [(4, 1)])], "asks": []}


def test_cancel_rules(ex):
    r = ex.submit_limit("a", "ABC", "buy", "9.00", 1)
    assert ex.cancel("b", r.order_id).reason == "unknown_order"  # not b's order
    assert ex.cancel("a", 999).reason == "unknown_order"
    assert ex.cancel("a", r.order_id).accepted
    assert ex.cancel("a", r.order_id).reason == "unknown_order"  # already gone
    assert ex.book_snapshot("ABC") == {"bids": [], "asks": []}


def test_market_order_sweeps_and_the_rest_expires(ex):
    ex.submit_limit("a", "ABC", "sell", "10.00", 2)
    ex.submit_limit("a", "ABC", "sell", "11.00", 2)
    r = ex.submit_market("b", "ABC", "buy", 7)
    assert r.accepted and r.remaining == 3
    assert [(f["price"], f["qty"]) for f in r.fills] == [(D("10.00"), 2), (D("11.00"), 2)]
    assert ex.book_snapshot("ABC") == {"bids": [], "asks": []}
    assert ex.balance("b")["cash"] == D("958.00")
    r = ex.submit_market("b", "ABC", "sell", 4)  # nothing to hit
    assert r.accepted and r.fills == [] and r.remaining == 4


def test_risk_rejects_invalid_orders(ex):
    assert ex.submit_limit("a", "ABC", "buy", "10.001", 1).reason == "invalid"
    assert ex.submit_limit("a", "ABC", "buy", "-1", 1).reason == "invalid"
    assert ex.submit_limit("a", "ABC", "buy", "10.00", 0).reason == "invalid"
    assert ex.submit_limit("a", "ABC", "hold", "10.00", 1).reason == "invalid"
    assert ex.submit_limit("a", "NOPE", "buy", "10.00", 1).reason == "invalid"
    assert ex.submit_limit("nobody", "ABC", "buy", "10.00", 1).reason == "invalid"
    assert ex.submit_market("a", "ABC", "buy", 2.5).reason == "invalid"


def test_risk_rejects_oversized_orders(ex):
    assert ex.submit_limit("a", "ABC", "sell", "10.00", 101).reason == "max_qty"
    assert ex.submit_limit("a", "ABC", "sell", "10.00", 100).reason == "insufficient_position"


def test_risk_rejects_buy_beyond_available_cash(ex):
    assert ex.submit_limit("poor", "ABC", "buy", "5.01", 2).reason == "insufficient_cash"
    assert ex.submit_limit("poor", "ABC", "buy", "5.00", 2).accepted
    # the first order's reservation leaves nothing for a second one
    assert ex.submit_limit("poor", "ABC", "buy", "0.01", 1).reason == "insufficient_cash"
    ex.submit_limit("a", "ABC", "sell", "6.00", 5)
    assert ex.submit_market("b", "ABC", "buy", 5).accepted
    ex.submit_limit("a", "ABC", "sell", "6.00", 5)
    assert ex.submit_market("poor", "ABC", "buy", 1).reason == "insufficient_cash"
    assert ex.balance("poor") == {"cash": D("10.00"), "reserved_cash": D("10.00"),
                                  "positions": {}, "reserved_positions": {}}


def test_risk_rejects_sell_beyond_available_position(ex):
    assert ex.submit_limit("a", "ABC", "sell", "10.00", 30).accepted
    assert ex.submit_limit("a", "ABC", "sell", "10.00", 21).reason == "insufficient_position"
    assert ex.submit_market("a", "ABC", "sell", 21).reason == "insufficient_position"
    assert ex.submit_limit("a", "ABC", "sell", "10.00", 20).accepted


def test_events_and_stats(ex):
    ex.submit_limit("a", "ABC", "sell", "10.00", 2)
    ex.submit_limit("a", "ABC", "sell", "12.00", 2)
    r = ex.submit_limit("b", "ABC", "buy", "12.00", 3)
    ex.submit_limit("poor", "ABC", "buy", "12.00", 3)
    kinds = [(e["type"], e["status"] if e["type"] == "order" else None) for e in ex.events]
    assert kinds == [("order", "accepted"), ("order", "accepted"), ("order", "accepted"),
                     ("fill", None), ("fill", None), ("order", "rejected")]
    fill = r.fills[1]
    assert (fill["buyer"], fill["seller"], fill["price"], fill["qty"]) == ("b", "a", D("12.00"), 1)
    assert fill["notional"] == D("12.00")
    assert "FILL ABC 1 @ 12.00" in fill["text"]
    assert '"price": "12.00"' in fill["wire"]
    assert ex.events[-1]["reason"] == "insufficient_cash"
    assert [e["seq"] for e in ex.events] == list(range(1, 7))
    assert ex.stats("ABC") == {"last_price": D("12.00"), "volume": 3, "trades": 2,
                               "vwap": D("10.6667")}
