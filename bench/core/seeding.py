"""Seeds derived from text (SHA-256): every hash-to-seed of the benchmark, in one place."""

from __future__ import annotations

import hashlib
from typing import Any


def text_seed(text: str, nbytes: int = 8) -> int:
    """The first ``nbytes`` bytes of SHA-256(``text``) as a little-endian integer."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:nbytes], "little")


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts joined by ``/``, e.g.
    ``derive_seed(seed, "data", 7)``."""
    return text_seed("/".join(str(p) for p in parts)) & (2**63 - 1)
