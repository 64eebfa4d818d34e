"""Developer benchmarks behind `scripts/perf` (run as `PYTHONPATH=tools python -m perf`).

Each compares the harness with a baseline measured in the same run and prints the
ratio; none of this is part of the product package or runs in the test suite.
"""
