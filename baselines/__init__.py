"""Comparison methods: weight-free controls (identity, dct-qim) and the paper's baselines."""
