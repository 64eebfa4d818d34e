"""A deliberately simple model of the exchange, used as the test oracle.

It keeps one flat list of resting orders and derives everything else from
it on demand: best prices by scanning, reservations by summing, books by
sorting. It trades speed for being obviously right.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")


class RefOrder:
    def __init__(self, order_id, account, symbol, side, price, qty):
        self.order_id = order_id
        self.account = account
        self.symbol = symbol
        self.side = side
        self.price = price
        self.remaining = qty


def parse_price(value):
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    if not d.is_finite() or d <= 0 or d != d.quantize(CENT):
        return None
    return d


def priority(order):
    """Sort key: better orders first (bids: high price; asks: low price; then time)."""
    if order.side == "buy":
        return (-order.price, order.order_id)
    return (order.price, order.order_id)


class ReferenceExchange:
    def __init__(self, symbols, max_order_qty):
        self.symbols = list(symbols)
        self.max_order_qty = max_order_qty
        self.cash = {}
        self.positions = {}
        self.resting = []
        self.last_order_id = 0
        self.fills = []

    def open_account(self, account, cash, positions=None):
        self.cash[account] = Decimal(str(cash))
        self.positions[account] = dict(positions or {})

    # -- derived state ----------------------------------------------------------

    def reserved_cash(self, account):
        return sum((o.price * o.remaining for o in self.resting
                    if o.account == account and o.side == "buy"), Decimal("0"))

    def reserved_position(self, account, symbol):
        return sum(o.remaining for o in self.resting
                   if o.account == account and o.side == "sell" and o.symbol == symbol)

    def side_orders(self, symbol, side):
        return sorted((o for o in self.resting if o.symbol == symbol and o.side == side),
                      key=priority)

    def book(self, symbol):
        result = {}
        for name, side in (("bids", "buy"), ("asks", "sell")):
            levels = []
            for o in self.side_orders(symbol, side):
                if not levels or levels[-1][0] != o.price:
                    levels.append((o.price, []))
                levels[-1][1].append((o.order_id, o.remaining))
            result[name] = levels
        return result

    def balance(self, account):
        symbols = set(self.positions[account]) | set(self.symbols)
        return {
            "cash": self.cash[account],
            "reserved_cash": self.reserved_cash(account),
            "positions": {s: self.positions[account].get(s, 0) for s in symbols},
            "reserved_positions": {s: self.reserved_position(account, s) for s in symbols},
        }

    def vwap(self, symbol, window):
        recent = [f for f in self.fills if f["symbol"] == symbol][-window:]
        if not recent:
            return None
        total = sum(f["price"] * f["qty"] for f in recent)
        return (total / sum(f["qty"] for f in recent)).quantize(Decimal("0.0001"))

    # -- commands -------------------------------------------------------------

    def submit(self, account, symbol, side, kind, price, qty):
        """Returns (accepted, order_id, reason, fills)."""
        self.last_order_id += 1
        order_id = self.last_order_id
        if symbol not in self.symbols or account not in self.cash:
            return (False, order_id, "invalid", [])
        if side not in ("buy", "sell") or kind not in ("limit", "market"):
            return (False, order_id, "invalid", [])
        if type(qty) is not int or qty <= 0:
            return (False, order_id, "invalid", [])
        if kind == "limit":
            price = parse_price(price)
            if price is None:
                return (False, order_id, "invalid", [])
        elif price is not None:
            return (False, order_id, "invalid", [])
        if qty > self.max_order_qty:
            return (False, order_id, "max_qty", [])

        opposite = "sell" if side == "buy" else "buy"
        if side == "buy":
            if kind == "limit":
                cost = price * qty
            else:
                cost, left = Decimal("0"), qty
                for o in self.side_orders(symbol, "sell"):
                    take = min(left, o.remaining)
                    cost += o.price * take
                    left -= take
            if cost > self.cash[account] - self.reserved_cash(account):
                return (False, order_id, "insufficient_cash", [])
        else:
            held = self.positions[account].get(symbol, 0)
            if qty > held - self.reserved_position(account, symbol):
                return (False, order_id, "insufficient_position", [])

        taker = RefOrder(order_id, account, symbol, side, price, qty)
        fills = []
        while taker.remaining > 0:
            candidates = self.side_orders(symbol, opposite)
            if not candidates:
                break
            maker = candidates[0]
            if kind == "limit":
                if side == "buy" and maker.price > price:
                    break
                if side == "sell" and maker.price < price:
                    break
            take = min(taker.remaining, maker.remaining)
            buyer, seller = (taker, maker) if side == "buy" else (maker, taker)
            amount = maker.price * take
            self.cash[buyer.account] -= amount
            self.cash[seller.account] += amount
            bp = self.positions[buyer.account]
            sp = self.positions[seller.account]
            bp[symbol] = bp.get(symbol, 0) + take
            sp[symbol] = sp.get(symbol, 0) - take
            taker.remaining -= take
            maker.remaining -= take
            if maker.remaining == 0:
                self.resting.remove(maker)
            fill = {"symbol": symbol, "maker_order_id": maker.order_id, "taker_order_id": order_id,
                    "buyer": buyer.account, "seller": seller.account,
                    "price": maker.price, "qty": take}
            fills.append(fill)
            self.fills.append(fill)
        if kind == "limit" and taker.remaining > 0:
            self.resting.append(taker)
        return (True, order_id, None, fills)

    def cancel(self, account, order_id):
        for o in self.resting:
            if o.order_id == order_id and o.account == account:
                self.resting.remove(o)
                return (True, order_id, None, [])
        return (False, order_id, "unknown_order", [])
