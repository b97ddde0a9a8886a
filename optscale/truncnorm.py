"""The truncated normal on [0, 1]: scores, sufficient statistics, likelihood, moments, CDF.

Model: verifier scores ``s`` of one question are i.i.d. ``N(mu, sigma^2)`` truncated to
``[0, 1]``. The log-likelihood depends on the scores only through the sufficient statistics
``n, s1 = sum s, s2 = sum s^2`` (:class:`SuffStats`), which is also what the controller keeps in
Redis.

Everything is computed in log space so that neither tail cancels: ``log Phi`` uses ``erfc`` above
-35 and an asymptotic series below; ``log(Phi(b) - Phi(a))`` reflects into the lower tail when both
ends lie in the upper one and uses the midpoint rule on intervals narrower than 1e-7. Moments are
clamped into the support (``0 <= E x^k <= E x^(k-1)``), so mass squeezed against 0 or 1 never
yields a negative variance. Edge cases: ``n == 0`` gives log-likelihood 0 and a zero gradient; the
CDF is 0 at or below 0 and 1 at or above 1; a score that is not a finite number in [0, 1] (or is
a bool or a string) raises :class:`~optscale.errors.InvalidScoreError`; non-finite ``mu``, ``sigma
<= 0``, a NaN CDF argument or sufficient statistics no scores can have raise
:class:`~optscale.errors.InvalidArgumentError` naming the field.

Pure functions on Python floats (``math`` only). The bounded fits built on these moments are in
:mod:`optscale.fitting`; the bound N* and the public facade are in :mod:`optscale.stats`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

from optscale.errors import InvalidArgumentError, InvalidScoreError

__all__ = [
    "SuffStats",
    "log_ndtr",
    "loglik",
    "loglik_grad",
    "trunc_cdf",
    "truncnorm_moments",
    "validate_score",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT1_2 = math.sqrt(0.5)


# --------------------------------------------------------------------------- validation


def validate_score(x: float) -> float:
    """Return ``x`` as a float if it is a finite score in [0, 1], else raise InvalidScoreError.

    A score is a real number (``float``, ``int``, numpy floats); bools and strings are not,
    even where ``float()`` would take them (``True``, ``"0.5"``)."""
    if type(x) is not float and (isinstance(x, bool) or not isinstance(x, numbers.Real)):
        raise InvalidScoreError(x, f"scores must be numbers in [0, 1], not {type(x).__name__}")
    v = float(x)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise InvalidScoreError(x)
    return v


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True, slots=True)
class SuffStats:
    """Sufficient statistics of scores in [0, 1]: count, sum, sum of squares, min, max."""

    n: int = 0
    s1: float = 0.0
    s2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def __post_init__(self) -> None:
        """Refuse statistics no scores in [0, 1] can have: ``n < 0``, ``n == 0`` with nonzero
        sums, or sums outside ``0 <= s2 <= s1 <= n``, ``s1^2 <= n s2`` (Cauchy-Schwarz, with
        float slack), or ``lo > hi`` outside [0, 1] when both are given."""
        n, s1, s2 = self.n, self.s1, self.s2
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgumentError("n", n, "must be an integer >= 0")
        if not (math.isfinite(s1) and math.isfinite(s2)):
            raise InvalidArgumentError("s1, s2", (s1, s2), "must be finite")
        if not 0.0 <= s1 <= n:
            raise InvalidArgumentError("s1", s1, f"must be in [0, n] (n={n})")
        if not (0.0 <= s2 <= s1 and s1 * s1 <= n * s2 * (1.0 + 1e-9) + 1e-12):
            raise InvalidArgumentError("s2", s2, f"inconsistent with n={n}, s1={s1}")
        if n and math.isfinite(self.lo) and math.isfinite(self.hi):
            if not 0.0 <= self.lo <= self.hi <= 1.0:
                raise InvalidArgumentError("lo, hi", (self.lo, self.hi), "need 0 <= lo <= hi <= 1")

    def add(self, score: float) -> SuffStats:
        s = validate_score(score)
        return SuffStats(
            self.n + 1, self.s1 + s, self.s2 + s * s, min(self.lo, s), max(self.hi, s)
        )

    @classmethod
    def of(cls, scores: Iterable[float]) -> SuffStats:
        n, s1, s2, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
        for x in scores:
            s = validate_score(x)
            n += 1
            s1 += s
            s2 += s * s
            lo = min(lo, s)
            hi = max(hi, s)
        return cls(n, s1, s2, lo, hi)

    @property
    def mean(self) -> float:
        return self.s1 / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof = 0), never negative."""
        if not self.n:
            return math.nan
        m = self.s1 / self.n
        return math.sqrt(max(self.s2 / self.n - m * m, 0.0))


# --------------------------------------------------------------------------- normal tails


def log_ndtr(x: float) -> float:
    """log Phi(x), accurate in both tails (erfc above -35, asymptotic series below)."""
    if x > 5.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    if x > -35.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    z2 = 1.0 / (x * x)
    series = 1.0 - z2 * (1.0 - 3.0 * z2 * (1.0 - 5.0 * z2 * (1.0 - 7.0 * z2)))
    return -0.5 * x * x - math.log(-x) - _LOG_SQRT_2PI + math.log(series)


def _log1mexp(d: float) -> float:
    """log(1 - exp(d)) for d <= 0."""
    if d >= 0.0:
        return -math.inf
    if d > -0.6931471805599453:
        return math.log(-math.expm1(d))
    return math.log1p(-math.exp(d))


def _log_phi_diff(lo: float, hi: float) -> float:
    """log(Phi(hi) - Phi(lo)) for lo < hi, without cancellation in either tail."""
    if lo >= hi:
        return -math.inf
    if hi - lo < 1e-7:  # midpoint rule; error O((hi - lo)^2), far below float noise here
        return math.log(hi - lo) + _log_pdf(0.5 * (lo + hi))
    if lo > 0.0:  # both in the upper tail: Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)
        a, b = log_ndtr(-lo), log_ndtr(-hi)
    else:
        a, b = log_ndtr(hi), log_ndtr(lo)
    return a + _log1mexp(b - a)


def _log_pdf(x: float) -> float:
    return -0.5 * x * x - _LOG_SQRT_2PI


# --------------------------------------------------------------------------- likelihood


def _check_params(mu: float, sigma: float) -> None:
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0.0):
        if not math.isfinite(mu):
            raise InvalidArgumentError("mu", mu, "must be finite")
        raise InvalidArgumentError("sigma", sigma, "must be finite and > 0")


def loglik(mu: float, sigma: float, st: SuffStats) -> float:
    """Log-likelihood of (mu, sigma) for the scores summarised by ``st``."""
    _check_params(mu, sigma)
    n = st.n
    if n == 0:
        return 0.0
    q = st.s2 - 2.0 * mu * st.s1 + n * mu * mu
    log_z = _log_phi_diff(-mu / sigma, (1.0 - mu) / sigma)
    return -n * (math.log(sigma) + _LOG_SQRT_2PI + log_z) - q / (2.0 * sigma * sigma)


def loglik_grad(mu: float, sigma: float, st: SuffStats) -> tuple[float, float]:
    """Analytic gradient (d/dmu, d/dsigma) of :func:`loglik`."""
    _check_params(mu, sigma)
    n = st.n
    if n == 0:
        return 0.0, 0.0
    a, b = -mu / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    ra = math.exp(_log_pdf(a) - log_z)
    rb = math.exp(_log_pdf(b) - log_z)
    q = st.s2 - 2.0 * mu * st.s1 + n * mu * mu
    s2_ = sigma * sigma
    d_mu = (st.s1 - n * mu) / s2_ - n * (ra - rb) / sigma
    d_sigma = -n / sigma + q / (s2_ * sigma) - n * (a * ra - b * rb) / sigma
    return d_mu, d_sigma


def _moments(mu: float, sigma: float) -> tuple[float, float, float, float, float]:
    """(log Z, E x, E x^2, E x^3, E x^4) of N(mu, sigma) truncated to [0, 1]."""
    a, b = -mu / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    ra = math.exp(_log_pdf(a) - log_z) if math.isfinite(log_z) else 0.0
    rb = math.exp(_log_pdf(b) - log_z) if math.isfinite(log_z) else 0.0
    # Moments of the standardised variable Y on [a, b]: E Y^k = (k-1) E Y^(k-2) - [y^(k-1) r].
    y1 = ra - rb
    y2 = 1.0 + a * ra - b * rb
    y3 = 2.0 * y1 + a * a * ra - b * b * rb
    y4 = 3.0 * y2 + a * a * a * ra - b * b * b * rb
    s, m = sigma, mu
    e1 = m + s * y1
    e2 = m * m + 2.0 * m * s * y1 + s * s * y2
    mm, ss = m * m, s * s
    e3 = mm * m + 3.0 * mm * s * y1 + 3.0 * m * ss * y2 + ss * s * y3
    e4 = mm * mm + 4.0 * mm * m * s * y1 + 6.0 * mm * ss * y2 + 4.0 * m * ss * s * y3 + ss * ss * y4
    # Clamp into the support: a distribution on [0, 1] has 0 <= E x^k <= E x^(k-1).
    e1 = min(max(e1, 0.0), 1.0)
    e2 = min(max(e2, e1 * e1), e1)
    e3 = min(max(e3, 0.0), e2)
    e4 = min(max(e4, e2 * e2), e3)
    return log_z, e1, e2, e3, e4


def truncnorm_moments(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and standard deviation of N(mu, sigma) truncated to [0, 1]."""
    _check_params(mu, sigma)
    _, e1, e2, _, _ = _moments(mu, sigma)
    return e1, math.sqrt(max(e2 - e1 * e1, 0.0))


def trunc_cdf(x: float, mu: float, sigma: float) -> float:
    """CDF at ``x`` of N(mu, sigma) truncated to [0, 1]; ``x`` may be infinite, not NaN."""
    _check_params(mu, sigma)
    if math.isnan(x):
        raise InvalidArgumentError("x", x, "must be a number, not NaN")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return math.exp(_log_trunc_cdf(x, mu, sigma))


def _log_trunc_cdf(x: float, mu: float, sigma: float) -> float:
    a, xs, b = -mu / sigma, (x - mu) / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    log_below = _log_phi_diff(a, xs) - log_z
    log_above = _log_phi_diff(xs, b) - log_z
    if log_above < -0.6931471805599453:  # F > 1/2: log F = log1p(-(1 - F)), precise near 1
        return math.log1p(-math.exp(log_above))
    return min(log_below, 0.0)
