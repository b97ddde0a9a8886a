"""The OptScale statistics core: a normal truncated to [0, 1], its fits, and the bound N*.

Pure functions on Python floats (``math`` only): a 2-D fit takes tens of microseconds, so the
controller can refit after every score. No I/O, no numpy in the hot path.

Model: verifier scores ``s`` of one question are i.i.d. ``N(mu, sigma^2)`` truncated to
``[0, 1]``. The log-likelihood depends on the scores only through the sufficient statistics
``n, s1 = sum s, s2 = sum s^2`` (:class:`SuffStats`), which is also what the controller keeps in
Redis. Fits are bounded (:class:`Bounds`): the unbounded MLE of a question whose scores all sit
near 1 runs ``mu`` off to 30-50 (the reference implementation's failure); ours stays in the box.

The optimizer is a projected Newton method with backtracking on analytic derivatives. The
Hessian comes from the exponential-family form: with natural parameters
``eta = (mu / sigma^2, -1 / (2 sigma^2))`` the log-likelihood is
``eta . (s1, s2) - n A(eta)``, whose derivatives are moments of the truncated normal.

Layout: this module holds the bound N* (:func:`n_star`) and the checks of its arguments, and is
the public face of the statistics core: every name in ``__all__`` can be imported from here. The
truncated normal itself (normal tails, likelihood, moments, CDF, :class:`SuffStats`) is in
:mod:`optscale.truncnorm`; the bounded fits (:class:`Bounds`, :class:`GaussianPrior`,
:class:`Fit`, :func:`fit_mle`, :func:`fit_map`, :func:`moment_match`) are in
:mod:`optscale.fitting`.
"""

from __future__ import annotations

import math

from optscale.errors import InvalidArgumentError
from optscale.fitting import (
    DEFAULT_TAU_MU,
    DEFAULT_TAU_SIGMA,
    MIN_TAU,
    Bounds,
    Fit,
    GaussianPrior,
    fit_map,
    fit_mle,
    moment_match,
)
from optscale.truncnorm import (
    SuffStats,
    _check_params,
    _log_trunc_cdf,
    log_ndtr,
    loglik,
    loglik_grad,
    trunc_cdf,
    truncnorm_moments,
    validate_score,
)

__all__ = [
    "DEFAULT_TAU_MU",
    "DEFAULT_TAU_SIGMA",
    "MIN_TAU",
    "Bounds",
    "Fit",
    "GaussianPrior",
    "SuffStats",
    "fit_map",
    "fit_mle",
    "log_ndtr",
    "loglik",
    "loglik_grad",
    "moment_match",
    "n_star",
    "trunc_cdf",
    "truncnorm_moments",
    "validate_alpha",
    "validate_s_min",
    "validate_score",
]


# --------------------------------------------------------------------------- validation


def _validate_open_unit(name: str, x: float) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, x, "must be a number in (0, 1)") from None
    if not (math.isfinite(v) and 0.0 < v < 1.0):
        raise InvalidArgumentError(name, x, "must be in the open interval (0, 1)")
    return v


def validate_alpha(alpha: float) -> float:
    """``alpha`` is the probability that N* samples contain one scoring above ``s_min``."""
    return _validate_open_unit("alpha", alpha)


def validate_s_min(s_min: float) -> float:
    """``s_min`` is the score a sample must exceed to count as good enough."""
    return _validate_open_unit("s_min", s_min)


# --------------------------------------------------------------------------- the bound


def n_star(alpha: float, s_min: float, mu: float, sigma: float, n_max: int) -> int:
    """``N* = ceil(log(1 - alpha) / log F(s_min))``, clipped to ``[1, n_max]``.

    ``F`` is the truncated-normal CDF: with N* samples, at least one scores above ``s_min`` with
    probability ``alpha``. ``F = 1`` (no sample can pass) gives ``n_max``; ``F = 0`` gives 1.
    """
    a = validate_alpha(alpha)
    s = validate_s_min(s_min)
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise InvalidArgumentError("n_max", n_max, "must be an integer >= 1")
    _check_params(mu, sigma)
    log_f = _log_trunc_cdf(s, mu, sigma)
    if log_f >= 0.0:
        return n_max
    if log_f == -math.inf:
        return 1
    ratio = math.log1p(-a) / log_f
    if not math.isfinite(ratio) or ratio >= n_max:
        return n_max
    return max(1, min(n_max, math.ceil(ratio - 1e-9)))
