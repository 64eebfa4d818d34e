"""fast-cancel: a cancel path that skips the ledger round-trip. It takes the
order out of the book and records the event, but no longer calls
_release(), on the theory that the reservation "goes with the order".
It does not: the cash or quantity the order reserved stays locked.

This strategy is wrong on purpose: it breaks the reservation invariant
(reserved == what resting orders hold) and the test suite must catch it."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("engine.py")

OLD = '''        book.remove(order_id)
        self._release(order)
        self._emit(events.order_event(self._next_seq(), "cancelled", order_id, account,
'''

NEW = '''        book.remove(order_id)
        self._emit(events.order_event(self._next_seq(), "cancelled", order_id, account,
'''


def main() -> int:
    return replace_each(TARGET, [(OLD, NEW)], "cancel without the ledger release")


if __name__ == "__main__":
    sys.exit(main())
