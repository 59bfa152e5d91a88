"""The foundation every other part of the harness stands on.

The contracts (``api``: Method, Attack, Metric, Source, Profile, MetricValue, BenchError), the
entry-point ``registry``, ``seeding``, video tensors (``video``) and files (``video_io``), the
evaluation ``profiles`` (TOML data) and the paper's ``reference`` figures, the results schema
(``results``), the content-addressed cache (``store``), checkpoint files and cards
(``checkpoints``), the list of weight files (``weights``), bootstrap statistics (``stats``) and
TOML line lookup (``toml_lines``).

Modules here import nothing from the other ``bench`` subpackages (tests/test_architecture.py).
"""
