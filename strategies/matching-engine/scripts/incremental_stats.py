"""incremental-stats: keep the rolling VWAP in engine/stats.py with running
sums. The window becomes a bounded deque; each fill adds its price*qty and
qty and subtracts the evicted fill's, instead of slicing the list and
re-summing the whole window with rounded Decimal adds on every fill. The
sums are exact Decimals, so the VWAP is bit-for-bit the same."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("stats.py")

REPLACEMENTS = [
    (
        "from decimal import Decimal\n",
        "from collections import deque\nfrom decimal import Decimal\n",
    ),
    (
        "        self.recent: list[tuple] = []  # (price, qty) of the last `window` fills\n",
        "        self.recent: deque = deque(maxlen=window)  # (price, qty) of the last `window` fills\n"
        "        self._notional = money.ZERO  # sum of price * qty over `recent`\n"
        "        self._shares = 0  # sum of qty over `recent`\n",
    ),
    (
        '''    def record(self, price: Decimal, qty: int) -> None:
        self.recent.append((price, qty))
        if len(self.recent) > self.window:
            self.recent = self.recent[-self.window:]
        self.last_price = price
        self.volume += qty
        self.trades += 1
        total = money.ZERO
        shares = 0
        for p, q in self.recent:
            total = money.add(total, money.notional(p, q))
            shares += q
        self.vwap = (total / shares).quantize(VWAP_PLACES)
''',
        '''    def record(self, price: Decimal, qty: int) -> None:
        recent = self.recent
        if len(recent) == self.window:
            old_price, old_qty = recent[0]  # evicted by the append below
            self._notional -= old_price * old_qty
            self._shares -= old_qty
        recent.append((price, qty))
        self._notional += price * qty
        self._shares += qty
        self.last_price = price
        self.volume += qty
        self.trades += 1
        self.vwap = (self._notional / self._shares).quantize(VWAP_PLACES)
''',
    ),
]


def main() -> int:
    return replace_each(TARGET, REPLACEMENTS, "running VWAP sums")


if __name__ == "__main__":
    sys.exit(main())
