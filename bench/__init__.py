"""Benchmarks (``make bench``): the worker measured as ratios against baselines run alongside.

Not part of ``make test``: nothing here asserts a timing. See ``bench/run.py``.
"""
