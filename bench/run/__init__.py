"""A benchmark run: methods x attacks x videos into a results folder.

``runner`` (``run``, ``RunConfig``: embed, attack, extract, score, cache, write the tables)
and ``attack_spec`` (parsing ``--attacks`` specs into attack groups). Imports ``bench.core``,
``bench.sources``, ``bench.metrics`` and the ``attacks`` package, never ``bench.report`` or
``bench.train`` (tests/test_architecture.py).
"""
