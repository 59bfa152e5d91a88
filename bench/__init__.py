"""safesora-bench: a benchmark for graphical (logo) video watermarks."""

__version__ = "0.1.0"
