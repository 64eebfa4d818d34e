"""fast-cancel: a cancel path that skips the ledger round-trip. It takes the
order out of the book and records the event, but no longer calls
_release(), on the theory that the reservation "goes with the order".
It does not: the cash or quantity the order reserved stays locked.

This strategy is wrong on purpose: it breaks the reservation invariant
(reserved == what resting orders hold) and the test suite must catch it."""

import os
import sys
from pathlib import Path

ROOT = Path(os.environ.get("HARNESS_WORKSPACE", "."))
TARGET = ROOT / "engine" / "engine.py"

OLD = '''        book.remove(order_id)
        self._release(order)
        self._emit(events.order_event(self._next_seq(), "cancelled", order_id, account,
'''

NEW = '''        book.remove(order_id)
        self._emit(events.order_event(self._next_seq(), "cancelled", order_id, account,
'''


def main() -> int:
    text = TARGET.read_text()
    if text.count(OLD) != 1:
        print(f"{TARGET}: expected baseline text not found exactly once:\n{OLD}", file=sys.stderr)
        return 1
    TARGET.write_text(text.replace(OLD, NEW))
    print(f"patched {TARGET}: cancel without the ledger release")
    return 0


if __name__ == "__main__":
    sys.exit(main())
