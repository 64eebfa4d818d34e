"""quiet-hot-path: stop formatting log messages nobody sees. The order path
in engine/engine.py called logger.debug/info with f-strings (including the
dataclass repr of the order and a snapshot of the account's balance) on every
submit and every fill; the message was built even though those levels are
disabled. Use logging's lazy %-style arguments, and guard the lines whose
arguments are costly (the balance snapshot per order, the event text per
fill) with isEnabledFor, since lazy formatting alone still evaluates the
arguments. Log output, when enabled, is unchanged."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("engine.py")

REPLACEMENTS = [
    (
        '        logger.debug(f"submit #{order_id}: {account} {kind} {side} {qty} {symbol} @ {price}")\n',
        '        logger.debug("submit #%s: %s %s %s %s %s @ %s", order_id, account, kind, side, qty, symbol, price)\n',
    ),
    (
        '        logger.debug(f"risk check for #{order_id} against balance {self.ledger.snapshot(account)}")\n',
        '        if logger.isEnabledFor(logging.DEBUG):  # the balance snapshot is not free\n'
        '            logger.debug("risk check for #%s against balance %s", order_id, self.ledger.snapshot(account))\n',
    ),
    (
        '            logger.info(f"rejecting #{order_id}: {exc}")\n',
        '            logger.info("rejecting #%s: %s", order_id, exc)\n',
    ),
    (
        '            logger.info(f"risk rejected {order!r}: {reason}")\n',
        '            logger.info("risk rejected %r: %s", order, reason)\n',
    ),
    (
        '        logger.info(f"accepted {order!r}: {len(fills)} fills, book now {len(book)} orders")\n',
        '        logger.info("accepted %r: %d fills, book now %d orders", order, len(fills), len(book))\n',
    ),
    (
        '''        logger.debug(f"fill: {event['text']}")\n''',
        '''        if logger.isEnabledFor(logging.DEBUG):\n            logger.debug("fill: %s", event["text"])\n''',
    ),
]


def main() -> int:
    return replace_each(TARGET, REPLACEMENTS, "lazy logging in the order path")


if __name__ == "__main__":
    sys.exit(main())
