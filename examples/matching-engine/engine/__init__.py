"""A small order-matching engine: limit and market orders, cancels,
price-time priority, per-account cash and positions, pre-trade risk checks."""

from .engine import Exchange, Result
from .orders import BUY, SELL, LIMIT, MARKET, Order

__all__ = ["Exchange", "Result", "Order", "BUY", "SELL", "LIMIT", "MARKET"]
