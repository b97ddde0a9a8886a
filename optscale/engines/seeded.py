"""Deterministic randomness for the sim backends: one generator per tuple of parts."""

from __future__ import annotations

import hashlib
import random


def seeded_rng(*parts: object) -> random.Random:
    h = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))
