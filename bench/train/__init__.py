"""Training of the trainable methods.

``loop`` (``train``: the training loop, its clip bank, validation, plateau stop and resumable
state), ``cli`` (the ``bench train`` subcommand) and ``campaign`` (several methods and profiles
from one TOML file). Imports ``bench.core`` (checkpoints, cache folder, profiles),
``bench.sources`` (training clips and logos), ``bench.metrics`` (validation PSNR) and
``attacks`` (the fitted H.264 proxy); never ``bench.run`` or
``bench.report`` (tests/test_architecture.py).
"""
