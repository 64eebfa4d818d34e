"""Benchmark runner support: statistics, flame graphs, records and reports.

Kept free of imports so ``import harness.bench`` stays cheap; import the
submodules (``harness.bench.stats``, ``.flame``, ``.model``, ``.html``) directly.
"""
