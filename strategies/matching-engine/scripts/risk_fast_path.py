"""risk-fast-path: rewrite RiskChecker.check in engine/risk.py as one
early-exit pass. It reads the account's Balance record in the ledger directly
(no defensive deepcopy per check), costs a limit buy with one multiplication,
and costs a market buy by walking book.iter_levels() and stopping once the
quantity is covered, instead of copying the whole book with snapshot()."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("risk.py")

REPLACEMENTS = [
    (
        "from .orders import BUY, Order\n",
        "from .orders import BUY, SELL, Order\n",
    ),
    (
        '''    def check(self, order: Order, book: OrderBook) -> Optional[str]:
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
''',
        '''    def check(self, order: Order, book: OrderBook) -> Optional[str]:
        """None when the order may trade, else the reason to reject it."""
        qty = order.qty
        if qty > self.max_order_qty:
            return "max_qty"
        # Read the ledger's own record: no copy is needed for a read-only check.
        balance = self.ledger.accounts[order.account]
        if order.side == BUY:
            price = order.price
            cost = price * qty if price is not None else self.market_buy_cost(qty, book)
            if cost > balance.cash - balance.reserved_cash:
                return "insufficient_cash"
            return None
        symbol = order.symbol
        if qty > balance.positions.get(symbol, 0) - balance.reserved_positions.get(symbol, 0):
            return "insufficient_position"
        return None
''',
    ),
    (
        '''        snapshot = book.snapshot()
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
''',
        '''        cost = money.ZERO
        remaining = qty
        for price, available in book.iter_levels(SELL):
            if available >= remaining:
                return cost + price * remaining
            cost += price * available
            remaining -= available
        return cost
''',
    ),
]


def main() -> int:
    return replace_each(TARGET, REPLACEMENTS, "single-pass risk check")


if __name__ == "__main__":
    sys.exit(main())
