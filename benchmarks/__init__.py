"""Benchmarks: each prints a table and writes JSON under ``benchmarks/results/``.

Run one with ``python -m benchmarks.<name>`` (``make bench-<name>``) or all with ``make bench``.
"""
