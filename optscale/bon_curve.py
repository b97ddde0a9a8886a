"""The best-of-N curve a stopping rule has to beat, and where a policy stands against it.

A stopping rule is worth running only if it beats every *fixed* N, not just BoN at N_max. For
a pool and the same sample orders replay uses, ``BoN(k)`` for ``k = 1..K`` is best-of-the-
first-``k`` samples of each order (the first of the highest scores wins): its accuracy and its
tokens (all ``k`` samples complete, nothing is cut). The curve through the points
``(0, 0), (tokens_1, acc_1), ..., (tokens_K, acc_K)`` is linear between points (running
``BoN(k)`` on some questions and ``BoN(k+1)`` on the others gives any point in between), and
the competitor at a budget is its running maximum: the best fixed N that budget affords.

Against it, a policy's point ``(tokens, accuracy)`` (served tokens: with the samples cut at the
stop) gets

* ``gain`` — its accuracy minus the curve's best accuracy at the same tokens (> 0: better than
  any fixed N at that budget; beyond ``tokens_K`` the curve stays at its best);
* ``ratio`` — its tokens / the fewest tokens at which the curve reaches its accuracy (< 1:
  cheaper than the best fixed N of equal accuracy); ``None`` when no ``k <= K`` reaches it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from optscale.pool_model import PoolSample

__all__ = ["BonCurve", "Standing", "bon_prefixes"]


def bon_prefixes(order: Sequence[PoolSample], k_max: int) -> list[tuple[bool, int]]:
    """``(correct, tokens)`` of BoN(k) on this order for ``k = 1..min(k_max, len(order))``."""
    out: list[tuple[bool, int]] = []
    best: PoolSample | None = None
    tokens = 0
    for s in order[:k_max]:
        if best is None or s.score > best.score:
            best = s
        tokens += s.tokens
        out.append((bool(best.correct), tokens))
    return out


@dataclass(frozen=True, slots=True)
class Standing:
    """A policy's point against the BoN curve."""

    tokens: float
    accuracy: float
    gain: float  # accuracy - curve accuracy at the same tokens
    ratio: float | None  # tokens / curve tokens at the same accuracy (None: curve never gets there)
    curve_k: float | None  # the (fractional) fixed N of equal accuracy


@dataclass(slots=True)
class BonCurve:
    """Accumulates BoN(k) over questions and orders; then answers :meth:`standing`."""

    k_max: int
    episodes: int = 0
    correct: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.correct = [0.0] * self.k_max
        self.tokens = [0.0] * self.k_max

    def add(self, order: Sequence[PoolSample]) -> None:
        pre = bon_prefixes(order, self.k_max)
        if len(pre) < self.k_max:
            raise ValueError(f"order of {len(pre)} samples for a curve up to k={self.k_max}")
        self.episodes += 1
        for i, (ok, tok) in enumerate(pre):
            self.correct[i] += ok
            self.tokens[i] += tok

    def points(self, k_max: int | None = None) -> list[tuple[int, float, float]]:
        """``(k, tokens per question, accuracy)`` for ``k = 1..k_max``."""
        n = max(1, self.episodes)
        k_top = self.k_max if k_max is None else min(k_max, self.k_max)
        return [(k, self.tokens[k - 1] / n, self.correct[k - 1] / n) for k in range(1, k_top + 1)]

    def _envelope(self, k_max: int | None) -> list[tuple[float, float, float]]:
        """``(k, tokens, best accuracy so far)`` with the origin first (k = 0)."""
        env = [(0.0, 0.0, 0.0)]
        for k, tok, acc in self.points(k_max):
            env.append((float(k), tok, max(acc, env[-1][2])))
        return env

    def accuracy_at(self, tokens: float, k_max: int | None = None) -> float:
        env = self._envelope(k_max)
        for (_, t0, a0), (_, t1, a1) in itertools.pairwise(env):
            if tokens <= t1:
                return a0 + (a1 - a0) * (tokens - t0) / (t1 - t0) if t1 > t0 else a1
        return env[-1][2]

    def tokens_for(self, accuracy: float, k_max: int | None = None) -> tuple[float, float] | None:
        """The fewest tokens (and the fractional k) at which the curve reaches ``accuracy``."""
        env = self._envelope(k_max)
        for (k0, t0, a0), (k1, t1, a1) in itertools.pairwise(env):
            if a1 >= accuracy - 1e-12:
                if a1 <= a0:
                    return t0, k0
                f = min(1.0, max(0.0, (accuracy - a0) / (a1 - a0)))
                return t0 + f * (t1 - t0), k0 + f * (k1 - k0)
        return None

    def standing(self, tokens: float, accuracy: float, k_max: int | None = None) -> Standing:
        """Where the point ``(tokens, accuracy)`` stands against BoN(k), ``k <= k_max``."""
        gain = accuracy - self.accuracy_at(tokens, k_max)
        reach = self.tokens_for(accuracy, k_max)
        if reach is None or reach[0] <= 0 or not math.isfinite(tokens):
            return Standing(tokens, accuracy, gain, None, None)
        return Standing(tokens, accuracy, gain, tokens / reach[0], reach[1])
