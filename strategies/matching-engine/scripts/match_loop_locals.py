"""match-loop-locals: tighten Exchange._match in engine/engine.py. Work out
the opposite side, the limit and the direction once per incoming order
instead of once per iteration, bind book.best / book.remove / self._fill to
locals, and compare prices with a single branch. Same trades, same order."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("engine.py")

OLD = '''        fills = []
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
'''

NEW = '''        fills = []
        best = book.best
        remove = book.remove
        fill = self._fill
        buying = order.side == BUY
        other = SELL if buying else BUY
        limit = order.price if order.kind == LIMIT else None
        while order.remaining > 0:
            maker = best(other)
            if maker is None:
                break
            if limit is not None and (maker.price > limit if buying else maker.price < limit):
                break
            remaining = order.remaining
            maker_remaining = maker.remaining
            fills.append(fill(order, maker, remaining if remaining < maker_remaining else maker_remaining))
            if maker.remaining == 0:
                remove(maker.order_id)
        return fills
'''


def main() -> int:
    return replace_each(TARGET, [(OLD, NEW)], "match loop with hoisted invariants")


if __name__ == "__main__":
    sys.exit(main())
