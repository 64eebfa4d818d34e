"""Money and price arithmetic.

Prices and cash amounts are Decimals with two places (one tick = one cent).
Every operation runs in an explicit decimal context and rounds its result
back to cents, so no value with more places can ever enter the books.
"""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PRECISION = 28


def to_price(value) -> Decimal:
    """Parse a limit price: positive, finite, on the one-cent tick."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        ctx.rounding = ROUND_HALF_EVEN
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"not a price: {value!r}") from None
        if not d.is_finite() or d <= 0:
            raise ValueError(f"price must be positive: {value!r}")
        q = d.quantize(CENT)
        if q != d:
            raise ValueError(f"price not on the 0.01 tick: {value!r}")
        return q


def to_money(value) -> Decimal:
    """Parse a cash amount: non-negative, finite, whole cents."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        ctx.rounding = ROUND_HALF_EVEN
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
        if not d.is_finite() or d < 0:
            raise ValueError(f"amount must be non-negative: {value!r}")
        q = d.quantize(CENT)
        if q != d:
            raise ValueError(f"amount not in whole cents: {value!r}")
        return q


def notional(price: Decimal, qty: int) -> Decimal:
    """price * qty, in cents."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        ctx.rounding = ROUND_HALF_EVEN
        return (price * Decimal(qty)).quantize(CENT)


def add(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        ctx.rounding = ROUND_HALF_EVEN
        return (a + b).quantize(CENT)


def sub(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        ctx.rounding = ROUND_HALF_EVEN
        return (a - b).quantize(CENT)
