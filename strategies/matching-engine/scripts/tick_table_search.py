"""tick-table-search: search for a price-level bucket table tuned to the
order flow before changing engine/book.py.

This strategy never finishes on purpose: its search has no stopping rule, so
it keeps "trying candidates" (sleeping between rounds) until the harness
kills it at its timeout. It writes nothing."""

import itertools
import sys
import time


def main() -> int:
    best = None
    for round_no in itertools.count(1):
        # each round would benchmark one candidate bucket width; none is ever accepted
        candidate = 2 ** (round_no % 8)
        print(f"::harness-step:: round {round_no}: try bucket width {candidate} ticks (best so far: {best})",
              flush=True)
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
