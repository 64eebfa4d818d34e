"""fast-money: make engine/money.py cheap. Every helper used to open a fresh
decimal localcontext and quantize its result; now they use one module-level
Context through its methods (no context-manager churn, immune to the
caller's context), and to_price memoises parsed prices (Decimals are
immutable, and order flow repeats a few hundred distinct price strings)."""

import sys

from edits import engine_file, replace_each

TARGET = engine_file("money.py")

REPLACEMENTS = [
    (
        "from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext\n"
        "\n"
        "CENT = Decimal(\"0.01\")\n"
        "ZERO = Decimal(\"0.00\")\n"
        "PRECISION = 28\n",
        "from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation\n"
        "\n"
        "CENT = Decimal(\"0.01\")\n"
        "ZERO = Decimal(\"0.00\")\n"
        "PRECISION = 28\n"
        "\n"
        "# One shared context, used through its methods: no per-call localcontext.\n"
        "_CTX = Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)\n"
        "_quantize = _CTX.quantize\n"
        "_multiply = _CTX.multiply\n"
        "_add = _CTX.add\n"
        "_subtract = _CTX.subtract\n"
        "\n"
        "# Parsed prices by input string. Decimals are immutable, so sharing is safe.\n"
        "_PRICE_CACHE: dict = {}\n"
        "_PRICE_CACHE_MAX = 4096\n",
    ),
    (
        '''def to_price(value) -> Decimal:
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
''',
        '''def to_price(value) -> Decimal:
    """Parse a limit price: positive, finite, on the one-cent tick."""
    key = value if value.__class__ is str else None
    if key is not None:
        cached = _PRICE_CACHE.get(key)
        if cached is not None:
            return cached
    try:
        d = Decimal(key if key is not None else str(value))
    except InvalidOperation:
        raise ValueError(f"not a price: {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"price must be positive: {value!r}")
    q = _quantize(d, CENT)
    if q != d:
        raise ValueError(f"price not on the 0.01 tick: {value!r}")
    if key is not None:
        if len(_PRICE_CACHE) >= _PRICE_CACHE_MAX:
            _PRICE_CACHE.clear()
        _PRICE_CACHE[key] = q
    return q
''',
    ),
    (
        '''def to_money(value) -> Decimal:
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
''',
        '''def to_money(value) -> Decimal:
    """Parse a cash amount: non-negative, finite, whole cents."""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"amount must be non-negative: {value!r}")
    q = _quantize(d, CENT)
    if q != d:
        raise ValueError(f"amount not in whole cents: {value!r}")
    return q
''',
    ),
    (
        '''def notional(price: Decimal, qty: int) -> Decimal:
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
''',
        '''def notional(price: Decimal, qty: int) -> Decimal:
    """price * qty, in cents."""
    return _quantize(_multiply(price, qty), CENT)


def add(a: Decimal, b: Decimal) -> Decimal:
    return _quantize(_add(a, b), CENT)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return _quantize(_subtract(a, b), CENT)
''',
    ),
]


def main() -> int:
    return replace_each(TARGET, REPLACEMENTS, "shared decimal context, memoised price parsing")


if __name__ == "__main__":
    sys.exit(main())
