"""The report of a results folder: tables, figures and the comparison with the paper.

``build`` (``build_report``: the markdown report and its CSV tables), ``plots`` (robustness
figures), ``ablation`` (the ablation table), ``training_curves`` and ``training_summary`` (what
the checkpoint cards say about training), ``formatting`` (number formatting shared by the
tables). Reads results through ``bench.core.results`` and metric directions through
``bench.metrics``; never imports ``bench.run`` or ``bench.train`` (tests/test_architecture.py).
"""
